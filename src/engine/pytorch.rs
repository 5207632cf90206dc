//! The hand-off to PyTorch: a self-contained `gdl_lab_model.py` (the same nets, the run's
//! mixed loss with MONAI's argument names, a NIfTI loader that puts nibabel's `[x, y, z]` in
//! gdl-lab's `[z, y, x]` order), to go with the weights under PyTorch's names
//! (`model::weights::pytorch_key`).

use serde_json::json;

use crate::train::TrainingConfig;
use crate::volume::{LabelMapping, RegionMap};

/// The module's file name (`import gdl_lab_model`).
pub const MODULE_FILE: &str = "gdl_lab_model.py";

const TEMPLATE: &str = include_str!("gdl_lab_model.py");
const SETTINGS_LINE: &str = "SETTINGS = {}\n";

/// The run's settings as the module's `SETTINGS`: every training setting under its link and
/// flag name, the class count and the file label value of each class, and for a region net
/// (`targets=regions`) the tissue of each class, from which its WT, TC and ET follow.
/// `channels` names the net's input channels in order (the modalities, e.g. `t1`, `t1ce`).
pub fn settings_json(
    config: &TrainingConfig,
    mapping: &LabelMapping,
    channels: &[String],
    regions: Option<&RegionMap>,
) -> serde_json::Value {
    let mut settings = serde_json::to_value(config).expect("flat settings serialise");
    settings["classes"] = json!(mapping.classes());
    settings["label_values"] = json!(mapping.values);
    settings["channels"] = json!(channels);
    if let Some(map) = regions {
        settings["region_tissues"] = json!(map.tissues.iter().map(|t| t.key()).collect::<Vec<_>>());
    }
    settings
}

/// `gdl_lab_model.py` with the run's settings written in.
pub fn python_module(
    config: &TrainingConfig,
    mapping: &LabelMapping,
    channels: &[String],
    regions: Option<&RegionMap>,
) -> String {
    let settings = serde_json::to_string_pretty(&settings_json(config, mapping, channels, regions))
        .expect("JSON values serialise");
    // JSON read by `json.loads` keeps true/false/null right, where a Python literal would not.
    let line = format!("SETTINGS = json.loads(r'''\n{settings}\n''')\n");
    TEMPLATE.replacen(SETTINGS_LINE, &line, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_carries_the_runs_settings() {
        let config = TrainingConfig {
            w_type: crate::loss::WeightType::Square,
            ..TrainingConfig::default()
        };
        let mapping = LabelMapping {
            values: vec![0, 1, 2, 4],
        };
        let module = python_module(&config, &mapping, &["t1".into(), "flair".into()], None);
        assert!(
            !module.contains(SETTINGS_LINE),
            "the settings were not written in"
        );
        assert!(module.contains("\"w_type\": \"square\""), "{module}");
        assert!(module.contains("\"label_values\": [\n    0,\n    1,\n    2,\n    4\n  ]"));
        assert!(module.contains("\"include_background\": true"));
        assert!(
            module.contains("\"channels\": [\n    \"t1\",\n    \"flair\"\n  ]"),
            "{module}"
        );
        assert!(!module.contains("\"region_tissues\": ["));
        let regions = TrainingConfig {
            targets: crate::volume::Targets::Regions,
            warmup: crate::loss::WarmupLoss::Bce,
            ..TrainingConfig::default()
        };
        let module = python_module(&regions, &mapping, &[], Some(&RegionMap::brats()));
        assert!(module.contains("\"targets\": \"regions\""), "{module}");
        assert!(
            module.contains(
                "\"region_tissues\": [\n    \"background\",\n    \"core\",\n    \"oedema\",\n    \
                 \"enhancing\"\n  ]"
            ),
            "{module}"
        );
    }
}
