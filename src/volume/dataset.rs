//! A set of cases, as people bring them for real work (a folder of BraTS case folders, the
//! Medical Segmentation Decathlon's task folder): every case with the same modalities as
//! channels, one label convention for all, and the cases held out for validation. One scan is
//! the set of one case.

use super::files::{LoadedScan, modality_keys};
use super::labels::{BratsConvention, LabelMapping};

/// One case of a set: its name (its folder, or its files' shared stem) and its scan.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub scan: LoadedScan,
}

/// The cases, sorted by name, and which of them are held out.
#[derive(Clone, Debug)]
pub struct Dataset {
    cases: Vec<Case>,
    held_out: Vec<bool>,
}

impl Dataset {
    /// One scan, trained on (nothing held out).
    pub fn single(scan: LoadedScan) -> Self {
        let name = scan.image_name.clone();
        Self {
            cases: vec![Case { name, scan }],
            held_out: vec![false],
        }
    }

    /// The cases as a set: sorted by name; the same modalities in every case (a sentence naming
    /// the case and the modality when one lacks or adds one); the labels of every case on one
    /// mapping ([`unify_labels`]); with two or more cases the last by name held out.
    /// `label_names` (value → name, as the Decathlon's `dataset.json` gives them) fixes the
    /// label values and their names.
    pub fn new(
        mut cases: Vec<Case>,
        label_names: Option<&[(i64, String)]>,
    ) -> Result<Self, String> {
        if cases.is_empty() {
            return Err("No case was given.".into());
        }
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = cases.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(format!(
                "Two cases are named {}; give each its own name.",
                pair[0].name
            ));
        }
        check_modalities(&cases)?;
        unify_labels(&mut cases, label_names)?;
        let count = cases.len();
        let mut held_out = vec![false; count];
        if count >= 2 {
            held_out[count - 1] = true;
        }
        Ok(Self { cases, held_out })
    }

    /// Holds out exactly the cases named (none: every case trains). A sentence for an unknown
    /// name, or when no case would be left to train on.
    pub fn hold_out(&mut self, names: &[String]) -> Result<(), String> {
        let mut held_out = vec![false; self.cases.len()];
        for name in names {
            let Some(index) = self.cases.iter().position(|case| &case.name == name) else {
                return Err(format!(
                    "There is no case {name} to hold out; the cases are {}.",
                    self.names().join(", ")
                ));
            };
            held_out[index] = true;
        }
        if held_out.iter().all(|&out| out) {
            return Err(format!(
                "Every case ({}) would be held out; leave at least one to train on.",
                self.names().join(", ")
            ));
        }
        self.held_out = held_out;
        Ok(())
    }

    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    pub fn names(&self) -> Vec<String> {
        self.cases.iter().map(|case| case.name.clone()).collect()
    }

    pub fn is_held_out(&self, index: usize) -> bool {
        self.held_out[index]
    }

    /// The cases that feed training patches, in name order.
    pub fn training(&self) -> impl Iterator<Item = &Case> {
        self.cases
            .iter()
            .zip(&self.held_out)
            .filter(|(_, out)| !**out)
            .map(|(case, _)| case)
    }

    /// The held-out cases, scored while training and never sampled.
    pub fn validation(&self) -> impl Iterator<Item = &Case> {
        self.cases
            .iter()
            .zip(&self.held_out)
            .filter(|(_, out)| **out)
            .map(|(case, _)| case)
    }

    /// The cases with their held-out flags.
    pub fn into_parts(self) -> Vec<(Case, bool)> {
        self.cases.into_iter().zip(self.held_out).collect()
    }
}

/// Every case must bring the same modalities (compared by [`modality_keys`]); their channel
/// order then agrees, since each case orders its channels by the same rule.
fn check_modalities(cases: &[Case]) -> Result<(), String> {
    let first = &cases[0];
    let expected = modality_keys(&first.scan.modalities);
    for case in &cases[1..] {
        let keys = modality_keys(&case.scan.modalities);
        if let Some(missing) = expected.iter().find(|key| !keys.contains(key)) {
            return Err(format!(
                "Case {} has no {missing} image; every case must bring the same modalities ({}, \
                 as {} does).",
                case.name,
                expected.join(", "),
                first.name
            ));
        }
        if let Some(extra) = keys.iter().find(|key| !expected.contains(key)) {
            return Err(format!(
                "Case {} brings a {extra} image that {} lacks; every case must bring the same \
                 modalities ({}).",
                case.name,
                first.name,
                expected.join(", ")
            ));
        }
    }
    Ok(())
}

impl BratsConvention {
    /// The label values of the convention, background included.
    pub fn values(self) -> [i64; 4] {
        match self {
            BratsConvention::Brats2021 => [0, 1, 2, 4],
            BratsConvention::Brats2023 => [0, 1, 2, 3],
        }
    }
}

/// Puts every case's labels on one mapping, so that class 3 means the same tissue in every
/// case even when a case lacks a label (a BraTS case without necrosis has no 1). The mapping
/// is the convention's values when a case follows BraTS, `label_names`' values when given,
/// else every value seen. A case whose labels disagree with the others' convention (BraTS
/// 2021's 4 beside BraTS 2023's 3) or with `label_names` gets a sentence naming it.
pub fn unify_labels(
    cases: &mut [Case],
    label_names: Option<&[(i64, String)]>,
) -> Result<(), String> {
    let conventions: Vec<Option<BratsConvention>> = cases
        .iter()
        .map(|case| {
            let scan = &case.scan;
            let names = [case.name.as_str(), &scan.label_name, &scan.image_name];
            scan.mapping.brats_convention(&names)
        })
        .collect();
    let convention = conventions
        .iter()
        .zip(cases.iter())
        .find_map(|(c, case)| c.map(|c| (c, case.name.clone())));
    let (values, names): (Vec<i64>, Option<Vec<String>>) = match (label_names, convention.clone()) {
        (Some(named), _) => {
            let mut named = named.to_vec();
            named.sort();
            (
                named.iter().map(|(v, _)| *v).collect(),
                Some(named.into_iter().map(|(_, n)| n).collect()),
            )
        }
        (None, Some((convention, _))) => (convention.values().to_vec(), None),
        (None, None) => {
            let mut all: Vec<i64> = cases
                .iter()
                .flat_map(|case| case.scan.mapping.values.clone())
                .collect();
            all.sort();
            all.dedup();
            (all, None)
        }
    };
    for case in cases.iter() {
        if let Some(stray) = case
            .scan
            .mapping
            .values
            .iter()
            .find(|v| !values.contains(v))
        {
            let rule = match (label_names, &convention) {
                (Some(_), _) => "the labels dataset.json names".to_string(),
                (None, Some((convention, by))) => format!(
                    "{} (case {by})",
                    convention
                        .describe()
                        .trim_start_matches("The labels follow ")
                        .trim_end_matches('.')
                ),
                (None, None) => unreachable!("every value seen is in the union"),
            };
            return Err(format!(
                "Case {} has label {stray}, which is not in {rule}; a set's cases must share one \
                 label convention.",
                case.name
            ));
        }
    }
    let mapping = LabelMapping { values };
    // Names the cases already agree on (the phantom's tissues) stay; else the convention's.
    let shared = cases.iter().all(|case| {
        case.scan.mapping == mapping && case.scan.class_names == cases[0].scan.class_names
    });
    let class_names = names
        .or_else(|| shared.then(|| cases[0].scan.class_names.clone()))
        .unwrap_or_else(|| mapping.class_names(convention.map(|(c, _)| c)));
    for case in cases.iter_mut() {
        let scan = &mut case.scan;
        let renumber: Vec<u8> = scan
            .mapping
            .values
            .iter()
            .map(|value| {
                mapping
                    .values
                    .iter()
                    .position(|v| v == value)
                    .expect("checked above") as u8
            })
            .collect();
        for label in &mut scan.volume.labels {
            *label = renumber[*label as usize];
        }
        scan.volume.classes = mapping.classes();
        scan.mapping = mapping.clone();
        scan.class_names = class_names.clone();
    }
    Ok(())
}
