fn main() -> anyhow::Result<()> {
    rallypoint::cli::main()
}
