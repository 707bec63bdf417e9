// mimalloc: the fold allocates and frees many small buffers per event (keys, encoded state),
// where it is markedly faster than the system allocator (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    rallypoint::cli::main()
}
