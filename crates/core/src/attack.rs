//! MITRE ATT&CK tactics of a technique, from the technique table the project ships
//! (`data/attack-techniques.csv`: id, name, tactics separated by `;`, platforms). A
//! sub-technique missing from the table takes its parent's tactics; an unknown technique has
//! the tactic `unknown`, so it still counts.

use std::collections::BTreeMap;
use std::sync::OnceLock;

const TABLE: &str = include_str!("../../../data/attack-techniques.csv");

fn table() -> &'static BTreeMap<&'static str, Vec<&'static str>> {
    static PARSED: OnceLock<BTreeMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    PARSED.get_or_init(|| {
        TABLE
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split(',');
                let id = cols.next()?;
                let _name = cols.next()?;
                let tactics = cols.next()?.split(';').filter(|t| !t.is_empty()).collect();
                Some((id, tactics))
            })
            .collect()
    })
}

/// The tactics of `technique`, e.g. `T1486` → `impact`.
pub fn tactics(technique: &str) -> Vec<&'static str> {
    let t = table();
    let parent = technique.split('.').next().unwrap_or(technique);
    t.get(technique)
        .or_else(|| t.get(parent))
        .cloned()
        .unwrap_or_else(|| vec!["unknown"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_technique_maps_to_its_tactics_and_a_sub_technique_to_its_parents() {
        assert!(table().len() > 200);
        assert_eq!(tactics("T1001"), vec!["command-and-control"]);
        assert_eq!(tactics("T1001.999"), vec!["command-and-control"]);
        assert_eq!(tactics("T9999"), vec!["unknown"]);
    }
}
