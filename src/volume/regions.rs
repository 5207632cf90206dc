//! BraTS's three overlapping regions, as BraTS scores a segmentation and as nnU-Net's
//! region-based training and MONAI's `ConvertToMultiChannelBasedOnBratsClasses` train one:
//! whole tumour (WT: every tumour label), tumour core (TC: the necrotic or non-enhancing core and
//! the enhancing tumour) and enhancing tumour (ET). A voxel of the enhancing tumour belongs to
//! all three, so the regions are three sigmoid channels, never a softmax.
//!
//! Which class is which tissue follows from the classes' names: BraTS 2021 (1 necrotic core,
//! 2 oedema, 4 enhancing), BraTS 2023 (the same with 3 enhancing) and the Decathlon's Task01
//! (1 oedema, 2 non-enhancing tumour, 3 enhancing, as its `dataset.json` names them).

use serde::{Deserialize, Serialize};

/// What the net's output channels stand for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets {
    /// One channel per class (background included), through a softmax: exclusive classes.
    #[default]
    Classes,
    /// BraTS's three overlapping regions (WT, TC, ET), each through its own sigmoid.
    Regions,
}

impl Targets {
    pub const ALL: [Targets; 2] = [Targets::Classes, Targets::Regions];

    pub fn name(self) -> &'static str {
        match self {
            Targets::Classes => "classes",
            Targets::Regions => "regions",
        }
    }

    /// The net's output channels for a label map of `classes` classes.
    pub fn output_channels(self, classes: usize) -> usize {
        match self {
            Targets::Classes => classes,
            Targets::Regions => REGION_NAMES.len(),
        }
    }
}

/// The three regions, in the order of the net's output channels.
pub const REGION_NAMES: [&str; 3] = ["whole tumour", "tumour core", "enhancing tumour"];

/// Short names, for charts and tables.
pub const REGION_SHORT: [&str; 3] = ["WT", "TC", "ET"];

/// What a tumour class contributes to the regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tissue {
    Background,
    /// Oedema: WT only.
    Oedema,
    /// Necrotic or non-enhancing core: WT and TC.
    Core,
    /// Enhancing tumour: WT, TC and ET.
    Enhancing,
}

impl Tissue {
    /// The tissue's word in a weights file's metadata.
    pub fn key(self) -> &'static str {
        match self {
            Tissue::Background => "background",
            Tissue::Oedema => "oedema",
            Tissue::Core => "core",
            Tissue::Enhancing => "enhancing",
        }
    }

    /// Membership in WT, TC and ET.
    pub fn regions(self) -> [bool; 3] {
        match self {
            Tissue::Background => [false, false, false],
            Tissue::Oedema => [true, false, false],
            Tissue::Core => [true, true, false],
            Tissue::Enhancing => [true, true, true],
        }
    }

    /// The tissue a class name names ("necrotic core (label 1)", "edema", "non-enhancing
    /// tumor", "GD-enhancing tumour"), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.to_lowercase();
        if name.starts_with("background") {
            Some(Tissue::Background)
        } else if name.contains("non-enhanc")
            || name.contains("non enhanc")
            || name.contains("necro")
            || name.contains("core")
        {
            Some(Tissue::Core)
        } else if name.contains("enhanc") {
            Some(Tissue::Enhancing)
        } else if name.contains("edema") || name.contains("oedema") {
            Some(Tissue::Oedema)
        } else {
            None
        }
    }
}

/// The tissue of each class (class 0 is background), from which the region masks and the
/// labels written back follow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionMap {
    pub tissues: Vec<Tissue>,
}

impl RegionMap {
    /// BraTS's classes once renumbered (both {0, 1, 2, 4} and {0, 1, 2, 3} become classes
    /// 0–3): 1 necrotic core, 2 oedema, 3 enhancing tumour; the demo phantom's order too.
    pub fn brats() -> Self {
        Self {
            tissues: vec![
                Tissue::Background,
                Tissue::Core,
                Tissue::Oedema,
                Tissue::Enhancing,
            ],
        }
    }

    /// The map the classes' names give; a sentence when a class names no BraTS tissue or a
    /// region would have no class.
    pub fn from_class_names(names: &[String]) -> Result<Self, String> {
        let mut tissues = Vec::with_capacity(names.len());
        for (class, name) in names.iter().enumerate() {
            let tissue = if class == 0 {
                Tissue::Background
            } else {
                Tissue::from_name(name).ok_or_else(|| {
                    format!(
                        "Region targets need BraTS's tissues, but class {class} is \"{name}\", \
                         none of necrotic core, oedema or enhancing tumour (BraTS 2021 labels \
                         are 0, 1, 2, 4; BraTS 2023 files are named BraTS… with labels 0–3; a \
                         Decathlon task names its labels in dataset.json)."
                    )
                })?
            };
            tissues.push(tissue);
        }
        let map = Self { tissues };
        for (region, short) in REGION_SHORT.iter().enumerate() {
            if !map.tissues.iter().any(|tissue| tissue.regions()[region]) {
                return Err(format!(
                    "Region targets need a class in every region, but no class belongs to the \
                     {short} ({}) region; the classes are {}.",
                    REGION_NAMES[region],
                    names.join(", ")
                ));
            }
        }
        Ok(map)
    }

    pub fn classes(&self) -> usize {
        self.tissues.len()
    }

    /// The tissues in class order as a weights file's metadata keeps them:
    /// `background,core,oedema,enhancing`.
    pub fn to_metadata(&self) -> String {
        self.tissues
            .iter()
            .map(|tissue| tissue.key())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// [`Self::to_metadata`]'s form back; a sentence for a word that is no tissue.
    pub fn from_metadata(text: &str) -> Result<Self, String> {
        let tissues = text
            .split(',')
            .map(|word| {
                [
                    Tissue::Background,
                    Tissue::Oedema,
                    Tissue::Core,
                    Tissue::Enhancing,
                ]
                .into_iter()
                .find(|tissue| tissue.key() == word.trim())
                .ok_or_else(|| format!("the region map names an unknown tissue {word:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if tissues.len() < 2 || tissues[0] != Tissue::Background {
            return Err(format!(
                "the region map {text:?} does not start with the background"
            ));
        }
        Ok(Self { tissues })
    }

    /// `membership[region][class]`: 1 when the class belongs to the region.
    pub fn membership(&self) -> [Vec<f32>; 3] {
        std::array::from_fn(|region| {
            self.tissues
                .iter()
                .map(|tissue| f32::from(u8::from(tissue.regions()[region])))
                .collect()
        })
    }

    /// The region masks of a class map: three planes (WT, TC, ET) of `labels.len()` voxels.
    pub fn masks(&self, labels: &[u8]) -> Vec<f32> {
        let regions: Vec<[bool; 3]> = self.tissues.iter().map(|t| t.regions()).collect();
        let mut planes = vec![0.0; 3 * labels.len()];
        for (voxel, &label) in labels.iter().enumerate() {
            for (region, &inside) in regions[label as usize].iter().enumerate() {
                if inside {
                    planes[region * labels.len() + voxel] = 1.0;
                }
            }
        }
        planes
    }

    /// The class a voxel gets from the regions predicted there, as BraTS's labels are written
    /// back (nnU-Net's order): WT gives oedema, TC inside it the core, ET inside that the
    /// enhancing tumour; each later region wins over the earlier ones.
    pub fn class_of(&self, inside: [bool; 3]) -> u8 {
        let find = |tissue: Tissue| {
            self.tissues
                .iter()
                .position(|&t| t == tissue)
                .unwrap_or_default() as u8
        };
        if inside[2] {
            find(Tissue::Enhancing)
        } else if inside[1] {
            find(Tissue::Core)
        } else if inside[0] {
            find(Tissue::Oedema)
        } else {
            0
        }
    }

    /// Hard Dice of each region between two class maps (1 when the region is absent from both,
    /// the convention of [`crate::report::hard_dice`]).
    pub fn region_dice(&self, predicted: &[u8], truth: &[u8]) -> [f32; 3] {
        let regions: Vec<[bool; 3]> = self.tissues.iter().map(|t| t.regions()).collect();
        let mut both = [0usize; 3];
        let mut sizes = [0usize; 3];
        for (&p, &t) in predicted.iter().zip(truth) {
            let (p, t) = (regions[p as usize], regions[t as usize]);
            for region in 0..3 {
                both[region] += usize::from(p[region] && t[region]);
                sizes[region] += usize::from(p[region]) + usize::from(t[region]);
            }
        }
        std::array::from_fn(|region| match sizes[region] {
            0 => 1.0,
            size => 2.0 * both[region] as f32 / size as f32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_three_conventions_give_their_regions() {
        // BraTS 2021 (labels 0, 1, 2, 4, as `LabelMapping::class_names` names them).
        let brats = RegionMap::from_class_names(&names(&[
            "background",
            "necrotic core (label 1)",
            "oedema (label 2)",
            "enhancing tumour (label 4)",
        ]))
        .unwrap();
        assert_eq!(brats, RegionMap::brats());
        // The Decathlon's Task01: 1 edema, 2 non-enhancing tumor, 3 enhancing tumour.
        let msd = RegionMap::from_class_names(&names(&[
            "background",
            "edema",
            "non-enhancing tumor",
            "enhancing tumour",
        ]))
        .unwrap();
        assert_eq!(
            msd.tissues,
            [
                Tissue::Background,
                Tissue::Oedema,
                Tissue::Core,
                Tissue::Enhancing
            ]
        );
        let masks = msd.masks(&[0, 1, 2, 3]);
        assert_eq!(
            masks,
            [
                [0.0, 1.0, 1.0, 1.0], // WT
                [0.0, 0.0, 1.0, 1.0], // TC
                [0.0, 0.0, 0.0, 1.0], // ET
            ]
            .concat()
        );
        assert_eq!(
            RegionMap::from_metadata(&msd.to_metadata()),
            Ok(msd.clone())
        );
        assert!(RegionMap::from_metadata("background,tumour").is_err());
        // Written back: ET wins, then TC, then WT.
        assert_eq!(msd.class_of([true, true, true]), 3);
        assert_eq!(msd.class_of([false, false, true]), 3);
        assert_eq!(msd.class_of([true, true, false]), 2);
        assert_eq!(msd.class_of([true, false, false]), 1);
        assert_eq!(brats.class_of([true, true, false]), 1);
        assert_eq!(brats.class_of([true, false, false]), 2);
        assert_eq!(brats.class_of([false, false, false]), 0);
    }

    #[test]
    fn labels_that_are_no_tumour_tissue_get_a_sentence() {
        let error =
            RegionMap::from_class_names(&names(&["background", "label 1", "label 2"])).unwrap_err();
        assert!(error.contains("class 1 is \"label 1\""), "{error}");
        let error = RegionMap::from_class_names(&names(&["background", "oedema"])).unwrap_err();
        assert!(error.contains("TC (tumour core)"), "{error}");
    }

    #[test]
    fn region_dice_counts_overlapping_regions() {
        let map = RegionMap::brats();
        // Truth: ET, NCR, ED, bg; prediction: NCR, NCR, bg, bg.
        let dice = map.region_dice(&[1, 1, 0, 0], &[3, 1, 2, 0]);
        // WT: truth {0,1,2}, predicted {0,1} → 2·2/5; TC: truth {0,1}, predicted {0,1} → 1;
        // ET: truth {0}, predicted {} → 0.
        assert_eq!(dice, [0.8, 1.0, 0.0]);
        assert_eq!(map.region_dice(&[0, 0], &[0, 0]), [1.0; 3]);
    }
}
