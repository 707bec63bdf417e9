//! What the hunt functions make of indicators, for the interop check against independent
//! implementations (`scripts/check-hunt-interop.sh`: stix2-patterns, pycti, PyMISPWarningLists).
//!
//! Usage: `hunt_cases WARNINGLISTS_DIR < cases`, one `<kind>\t<value>` per line. Prints one JSON
//! object per line: the normalized value, its STIX pattern and indicator id, and for every list
//! in `WARNINGLISTS_DIR/{block,inform}/*.json` that applies to the kind, whether it holds it.

use std::io::{BufRead, Write};

use rallypoint_core::event::{Indicator, IndicatorKind};
use rallypoint_core::hunt::warninglist::{Action, Warninglist};
use rallypoint_core::hunt::{indicator_id, pattern};
use rallypoint_core::indicator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: hunt_cases DIR")?);
    let mut lists = Vec::new();
    for (folder, action) in [("block", Action::Block), ("inform", Action::Inform)] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(folder))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        for file in files
            .into_iter()
            .filter(|f| f.extension() == Some("json".as_ref()))
        {
            let text = std::fs::read_to_string(&file)?;
            let list = Warninglist::from_misp_json(&text, action)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let stem = file.file_stem().unwrap_or_default().to_string_lossy();
            lists.push((stem.into_owned(), list));
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let Some((kind, value)) = line.split_once('\t') else {
            continue;
        };
        let kind = IndicatorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| format!("unknown kind {kind}"))?;
        let key = indicator::key(&Indicator::new(kind, value.to_owned()));
        let normalized = key
            .as_deref()
            .and_then(|k| k.split_once(':'))
            .map(|(_, v)| v);
        let pattern = normalized.and_then(|v| pattern(kind, v));
        let held: serde_json::Map<String, serde_json::Value> = match normalized {
            Some(v) => lists
                .iter()
                .filter(|(_, l)| l.applies_to(kind))
                .map(|(file, l)| (file.clone(), l.contains(kind, v).into()))
                .collect(),
            None => Default::default(),
        };
        let record = serde_json::json!({
            "kind": kind.as_str(),
            "input": value,
            "normalized": normalized,
            "pattern": pattern,
            "id": pattern.as_deref().map(indicator_id),
            "lists": held,
        });
        writeln!(out, "{record}")?;
    }
    Ok(())
}
