//! NIfTI reading and writing, label maps, and bad files: hand-made bytes for each datatype,
//! byte order and version, malformed variants, and random bytes.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Write;

use gdl_lab::volume::nifti::{DataType, Voxels, write_nifti_gz};
use gdl_lab::volume::{
    Limits, PhantomConfig, Volume, pair_image_and_labels, phantom, read_nifti, read_nifti_pair,
    write_label_map,
};
use proptest::prelude::*;

/// A hand-made NIfTI file, independent of gdl-lab's writer.
#[derive(Clone)]
struct Spec {
    version: u8,
    little: bool,
    datatype: i16,
    dim: [i64; 8],
    pixdim: [f64; 8],
    vox_offset: f64,
    scl_slope: f64,
    scl_inter: f64,
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 6],
    srow: [[f64; 4]; 3],
    single: bool,
}

impl Spec {
    fn new(version: u8, little: bool, datatype: i16, dims: [i64; 3]) -> Self {
        Self {
            version,
            little,
            datatype,
            dim: [3, dims[0], dims[1], dims[2], 1, 1, 1, 1],
            pixdim: [1.0, 0.9, 1.1, 2.5, 1.0, 1.0, 1.0, 1.0],
            vox_offset: if version == 1 { 352.0 } else { 544.0 },
            scl_slope: 0.0,
            scl_inter: 0.0,
            qform_code: 0,
            sform_code: 1,
            quatern: [0.0; 6],
            srow: [
                [0.9, 0.0, 0.0, -10.0],
                [0.0, 1.1, 0.0, 20.0],
                [0.0, 0.0, 2.5, -30.0],
            ],
            single: true,
        }
    }

    fn header(&self) -> Vec<u8> {
        let size = if self.version == 1 { 348 } else { 540 };
        let mut h = vec![
            0u8;
            if self.single {
                self.vox_offset.max(0.0) as usize
            } else {
                size
            }
        ];
        h.resize(h.len().max(size), 0);
        let little = self.little;
        let mut put = |at: usize, bytes: Vec<u8>| h[at..at + bytes.len()].copy_from_slice(&bytes);
        macro_rules! b {
            ($v:expr) => {
                if little {
                    $v.to_le_bytes().to_vec()
                } else {
                    $v.to_be_bytes().to_vec()
                }
            };
        }
        if self.version == 1 {
            put(0, b!(348i32));
            for i in 0..8 {
                put(40 + 2 * i, b!(self.dim[i] as i16));
            }
            put(70, b!(self.datatype));
            for i in 0..8 {
                put(76 + 4 * i, b!(self.pixdim[i] as f32));
            }
            put(108, b!(self.vox_offset as f32));
            put(112, b!(self.scl_slope as f32));
            put(116, b!(self.scl_inter as f32));
            put(252, b!(self.qform_code as i16));
            put(254, b!(self.sform_code as i16));
            for i in 0..6 {
                put(256 + 4 * i, b!(self.quatern[i] as f32));
            }
            for r in 0..3 {
                for c in 0..4 {
                    put(280 + 16 * r + 4 * c, b!(self.srow[r][c] as f32));
                }
            }
            put(
                344,
                if self.single {
                    b"n+1\0".to_vec()
                } else {
                    b"ni1\0".to_vec()
                },
            );
        } else {
            put(0, b!(540i32));
            put(
                4,
                if self.single {
                    b"n+2\0\r\n\x1a\n".to_vec()
                } else {
                    b"ni2\0\r\n\x1a\n".to_vec()
                },
            );
            put(12, b!(self.datatype));
            for i in 0..8 {
                put(16 + 8 * i, b!(self.dim[i]));
                put(104 + 8 * i, b!(self.pixdim[i]));
            }
            put(168, b!(self.vox_offset as i64));
            put(176, b!(self.scl_slope));
            put(184, b!(self.scl_inter));
            put(344, b!(self.qform_code));
            put(348, b!(self.sform_code));
            for i in 0..6 {
                put(352 + 8 * i, b!(self.quatern[i]));
            }
            for r in 0..3 {
                for c in 0..4 {
                    put(400 + 32 * r + 8 * c, b!(self.srow[r][c]));
                }
            }
        }
        h
    }

    /// Header plus `values` encoded in the spec's datatype and byte order.
    fn file(&self, values: &[f64]) -> Vec<u8> {
        let mut bytes = self.header();
        bytes.extend(encode(values, self.datatype, self.little));
        bytes
    }
}

fn encode(values: &[f64], datatype: i16, little: bool) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| -> Vec<u8> {
            macro_rules! b {
                ($v:expr) => {
                    if little {
                        $v.to_le_bytes().to_vec()
                    } else {
                        $v.to_be_bytes().to_vec()
                    }
                };
            }
            match datatype {
                2 => vec![v as u8],
                256 => vec![v as i8 as u8],
                4 => b!(v as i16),
                512 => b!(v as u16),
                8 => b!(v as i32),
                768 => b!(v as u32),
                1024 => b!(v as i64),
                16 => b!(v as f32),
                64 => b!(v),
                _ => vec![0; 4],
            }
        })
        .collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn read(bytes: &[u8]) -> Result<Volume, String> {
    read_nifti(bytes, &Limits::default()).map_err(|error| error.0)
}

const TYPES: [(i16, DataType, [f64; 4]); 9] = [
    (2, DataType::Uint8, [0.0, 1.0, 200.0, 255.0]),
    (256, DataType::Int8, [-128.0, -1.0, 0.0, 127.0]),
    (4, DataType::Int16, [-32768.0, -5.0, 7.0, 32767.0]),
    (512, DataType::Uint16, [0.0, 1.0, 40000.0, 65535.0]),
    (8, DataType::Int32, [-100000.0, -1.0, 3.0, 2000000.0]),
    (768, DataType::Uint32, [0.0, 1.0, 70000.0, 4000000.0]),
    (1024, DataType::Int64, [-9.0e6, -1.0, 0.0, 1.0e7]),
    (16, DataType::Float32, [-1.5, 0.25, 3.75, 1.0e6]),
    (64, DataType::Float64, [-2.5, 0.125, 1.0e-3, 6.0e5]),
];

#[test]
fn every_datatype_byte_order_and_version_reads_back_its_values() {
    for version in [1u8, 2] {
        for little in [true, false] {
            for (code, datatype, sample) in TYPES {
                let values: Vec<f64> = (0..24).map(|i| sample[i % 4]).collect();
                let spec = Spec::new(version, little, code, [2, 3, 4]);
                let name = format!("NIfTI-{version} {datatype:?} little={little}");
                let volume = read(&spec.file(&values)).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(volume.dims, [2, 3, 4], "{name}");
                assert_eq!(volume.header.datatype, datatype, "{name}");
                assert_eq!(volume.header.version, version, "{name}");
                let expected: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                assert_eq!(volume.data, expected, "{name}");
                let spacing = if version == 1 {
                    [0.9f32 as f64, 1.1f32 as f64, 2.5]
                } else {
                    [0.9, 1.1, 2.5]
                };
                assert_eq!(volume.spacing, spacing, "{name}");
                // gzip is found by its magic bytes, whatever the name.
                let gz = read(&gzip(&spec.file(&values))).unwrap();
                assert_eq!(gz.data, expected, "{name} gzipped");
            }
        }
    }
}

#[test]
fn scaling_is_applied_unless_the_slope_is_zero_or_not_finite() {
    let values = [0.0, 1.0, 2.0, 3.0];
    let mut spec = Spec::new(1, true, 4, [4, 1, 1]);
    spec.scl_slope = 2.0;
    spec.scl_inter = -1.0;
    assert_eq!(
        read(&spec.file(&values)).unwrap().data,
        [-1.0, 1.0, 3.0, 5.0]
    );
    for slope in [0.0, f64::NAN, f64::INFINITY] {
        spec.scl_slope = slope;
        assert_eq!(
            read(&spec.file(&values)).unwrap().data,
            [0.0, 1.0, 2.0, 3.0]
        );
    }
}

#[test]
fn a_4d_file_gives_its_first_volume_and_says_so() {
    let mut spec = Spec::new(2, true, 16, [2, 2, 1]);
    spec.dim = [4, 2, 2, 1, 3, 1, 1, 1];
    let values: Vec<f64> = (0..12).map(|v| v as f64).collect();
    let volume = read(&spec.file(&values)).unwrap();
    assert_eq!(volume.data, [0.0, 1.0, 2.0, 3.0]);
    assert_eq!(volume.header.dims, [2, 2, 1, 3]);
    assert!(
        volume
            .warnings
            .iter()
            .any(|w| w.contains("first 3D volume")),
        "{:?}",
        volume.warnings
    );
}

#[test]
fn nan_voxels_become_zero_with_a_warning() {
    let spec = Spec::new(1, true, 16, [3, 1, 1]);
    let volume = read(&spec.file(&[1.0, f64::NAN, f64::INFINITY])).unwrap();
    assert_eq!(volume.data, [1.0, 0.0, 0.0]);
    assert!(
        volume.warnings.iter().any(|w| w.contains("2 voxels")),
        "{:?}",
        volume.warnings
    );
}

#[test]
fn hdr_img_pairs_read_like_single_files() {
    let mut spec = Spec::new(1, false, 4, [2, 2, 1]);
    spec.single = false;
    spec.vox_offset = 0.0;
    let header = spec.header();
    let image = encode(&[1.0, 2.0, 3.0, 4.0], 4, false);
    let volume = read_nifti_pair(&header, &image, &Limits::default()).unwrap();
    assert_eq!(volume.data, [1.0, 2.0, 3.0, 4.0]);
    let gz = read_nifti_pair(&gzip(&header), &gzip(&image), &Limits::default()).unwrap();
    assert_eq!(gz.data, volume.data);
    // A lone .hdr says what is missing.
    let alone = read(&header).unwrap_err();
    assert!(alone.contains(".img"), "{alone}");
}

/// qform-only files at the corners of nibabel's quaternion handling (small rotations, qfac −1
/// and 0, negative spacings, b²+c²+d² just above 1 in float32, w² inside nibabel's threshold),
/// made and read by `scripts/nibabel_qform_cases.py` with nibabel: the affine nibabel gives.
#[test]
fn qform_affines_match_nibabel_on_its_corner_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qform");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("nibabel.json")).expect("tests/data/qform/nibabel.json"),
    )
    .expect("json");
    let cases = expected["cases"].as_object().expect("cases");
    assert!(cases.len() >= 6, "{} cases", cases.len());
    for (name, case) in cases {
        let bytes = std::fs::read(dir.join(format!("{name}.nii"))).expect("the case's file");
        let volume = read(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        for (row, (ours, theirs)) in volume
            .affine
            .iter()
            .zip(case["affine"].as_array().unwrap())
            .enumerate()
        {
            for (col, (ours, theirs)) in ours.iter().zip(theirs.as_array().unwrap()).enumerate() {
                let theirs = theirs.as_f64().unwrap();
                assert!(
                    (ours - theirs).abs() <= 1e-9,
                    "{name}: affine[{row}][{col}] = {ours}, nibabel says {theirs}\n{:?}",
                    volume.affine
                );
            }
        }
    }
}

#[test]
fn the_affine_follows_nibabel_sform_then_qform_then_pixdim() {
    let values = [0.0; 24];
    let spec = Spec::new(1, true, 2, [2, 3, 4]);
    let sform = read(&spec.file(&values)).unwrap();
    assert_eq!(sform.affine[0], [0.9f32 as f64, 0.0, 0.0, -10.0]);
    assert_eq!(sform.affine[2][3], -30.0);

    // qform: 180° about z (b, c, d = 0, 0, 1) flips x and y.
    let mut q = spec.clone();
    q.sform_code = 0;
    q.qform_code = 1;
    q.quatern = [0.0, 0.0, 1.0, 5.0, 6.0, 7.0];
    let qform = read(&q.file(&values)).unwrap();
    let expect = [
        [-(0.9f32 as f64), 0.0, 0.0, 5.0],
        [0.0, -(1.1f32 as f64), 0.0, 6.0],
        [0.0, 0.0, 2.5, 7.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    for (row, expected) in qform.affine.iter().zip(expect) {
        for (a, b) in row.iter().zip(expected) {
            assert!((a - b).abs() < 1e-9, "{:?}", qform.affine);
        }
    }

    // Neither: nibabel's base affine, x flipped and centred.
    let mut neither = spec.clone();
    neither.sform_code = 0;
    let base = read(&neither.file(&values)).unwrap();
    assert!((base.affine[0][0] + 0.9).abs() < 1e-6);
    assert!((base.affine[0][3] - 0.9 * 0.5).abs() < 1e-6);
    assert!((base.affine[2][3] + 2.5 * 1.5).abs() < 1e-6);
}

#[test]
fn a_written_label_map_reads_back_with_the_same_data_and_affine() {
    for (sform_code, qform_code) in [(1, 0), (0, 1), (2, 1), (0, 0)] {
        let mut spec = Spec::new(2, false, 16, [3, 2, 2]);
        spec.sform_code = sform_code;
        spec.qform_code = qform_code;
        spec.quatern = [0.0, std::f64::consts::FRAC_1_SQRT_2, 0.0, 1.0, 2.0, 3.0];
        let image = read(&spec.file(&[0.5; 12])).unwrap();
        let labels: Vec<u16> = (0..12).map(|i| (i % 4) as u16).collect();
        let written = write_label_map(&labels, &image).unwrap();
        let back = read(&written).unwrap();
        assert_eq!(
            back.data,
            labels.iter().map(|&l| l as f32).collect::<Vec<_>>()
        );
        assert_eq!(back.header.datatype, DataType::Uint8);
        for (row, expected) in back.affine.iter().zip(image.affine) {
            for (a, b) in row.iter().zip(expected) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "codes {sform_code}/{qform_code}: {:?} vs {:?}",
                    back.affine,
                    image.affine
                );
            }
        }
    }
}

#[test]
fn the_phantom_round_trips_through_nifti_files() {
    let volume = phantom(PhantomConfig { size: 32, seed: 5 });
    let geometry = Volume::from_data(volume.dims, 1.0, volume.image.clone());
    let image = read(&write_nifti_gz(Voxels::Float32(&volume.image), &geometry).unwrap()).unwrap();
    let labels = read(&write_label_map(&wide(&volume.labels), &geometry).unwrap()).unwrap();
    assert_eq!(image.data, volume.image);
    let (paired, mapping) = pair_image_and_labels(&image, &labels).unwrap();
    assert!(mapping.is_identity());
    assert_eq!(paired.labels, volume.labels);
}

#[test]
fn label_maps_are_checked_and_brats_labels_are_renumbered() {
    let image = read(&Spec::new(1, true, 16, [2, 2, 1]).file(&[1.0; 4])).unwrap();
    let brats = read(&Spec::new(1, true, 2, [2, 2, 1]).file(&[0.0, 1.0, 2.0, 4.0])).unwrap();
    let (volume, mapping) = pair_image_and_labels(&image, &brats).unwrap();
    assert_eq!(mapping.values, [0, 1, 2, 4]);
    assert_eq!(volume.labels, [0, 1, 2, 3]);
    assert_eq!(volume.classes, 4);

    let other = read(&Spec::new(1, true, 2, [2, 1, 2]).file(&[0.0; 4])).unwrap();
    let shapes = pair_image_and_labels(&image, &other).unwrap_err();
    assert!(
        shapes.contains("2×1×2") && shapes.contains("2×2×1"),
        "{shapes}"
    );

    let fractional = read(&Spec::new(1, true, 16, [2, 2, 1]).file(&[0.0, 1.5, 0.0, 1.0])).unwrap();
    let error = pair_image_and_labels(&image, &fractional).unwrap_err();
    assert!(
        error.contains("1.5") && error.contains("integers"),
        "{error}"
    );
    let negative = read(&Spec::new(1, true, 4, [2, 2, 1]).file(&[0.0, -1.0, 0.0, 1.0])).unwrap();
    assert!(pair_image_and_labels(&image, &negative).is_err());
}

/// Each malformed file and the words its sentence must contain.
fn malformed() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let spec = Spec::new(1, true, 4, [4, 4, 4]);
    let good = spec.file(&[1.0; 64]);
    let with = |change: &dyn Fn(&mut Spec)| {
        let mut s = spec.clone();
        change(&mut s);
        s.file(&[1.0; 64])
    };
    let mut wrong_magic = good.clone();
    wrong_magic[344..348].copy_from_slice(b"abc\0");
    let mut sizeof = good.clone();
    sizeof[0..4].copy_from_slice(&349i32.to_le_bytes());
    let mut corrupt_gzip = gzip(&good);
    let middle = corrupt_gzip.len() / 2;
    corrupt_gzip[middle..middle + 8].copy_from_slice(&[0xff; 8]);
    let truncated_gzip = gzip(&good)[..40].to_vec();
    let mut offset_past_end = good.clone();
    offset_past_end[108..112].copy_from_slice(&5000f32.to_le_bytes());
    let mut absurd_offset = good.clone();
    absurd_offset[108..112].copy_from_slice(&1e12f32.to_le_bytes());
    let absurd_offset = gzip(&absurd_offset);
    vec![
        ("empty", vec![], "empty"),
        ("truncated header", good[..200].to_vec(), "truncated"),
        ("truncated data", good[..400].to_vec(), "truncated"),
        ("wrong magic", wrong_magic, "magic"),
        ("wrong sizeof_hdr", sizeof, "sizeof_hdr"),
        ("dim[0] = 0", with(&|s| s.dim[0] = 0), "dim[0]"),
        ("dim[0] = 8", with(&|s| s.dim[0] = 8), "dim[0]"),
        ("zero dim", with(&|s| s.dim[2] = 0), "dim[2]"),
        ("negative dim", with(&|s| s.dim[3] = -4), "dim[3]"),
        (
            "over the limit",
            with(&|s| s.dim = [3, 30000, 30000, 30000, 1, 1, 1, 1]),
            "limit",
        ),
        ("unknown datatype", with(&|s| s.datatype = 32), "datatype"),
        ("vox_offset past the end", offset_past_end, "vox_offset"),
        ("absurd vox_offset", absurd_offset, "vox_offset"),
        ("corrupt gzip", corrupt_gzip, "gzip"),
        ("truncated gzip", truncated_gzip, "gzip"),
        (
            "a PNG",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            "not a NIfTI",
        ),
    ]
}

#[test]
fn every_malformed_file_gets_a_sentence_naming_the_problem() {
    for (what, bytes, words) in malformed() {
        let error = read(&bytes).expect_err(what);
        assert!(error.contains(words), "{what}: {error}");
        assert!(error.ends_with('.'), "{what}: not a sentence: {error}");
    }
}

#[test]
fn dims_whose_product_overflows_are_refused_before_allocating() {
    let mut spec = Spec::new(2, true, 64, [1, 1, 1]);
    spec.dim = [7, 1 << 40, 1 << 40, 1 << 40, 1 << 40, 2, 2, 2];
    let error = read(&spec.file(&[])).unwrap_err();
    assert!(error.contains("2⁶⁴") || error.contains("limit"), "{error}");
    // A small limit refuses a header that asks for more, before reading any voxel.
    let big = Spec::new(1, true, 16, [64, 64, 64]).header();
    let error = read_nifti(
        &big,
        &Limits {
            max_f32_bytes: 1 << 19,
        },
    )
    .unwrap_err()
    .0;
    assert!(error.contains("limit"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = read_nifti(&bytes, &Limits::default());
        let _ = read_nifti(&gzip(&bytes), &Limits::default());
    }

    #[test]
    fn damaged_valid_files_never_panic_the_reader(
        version in 1u8..=2,
        little in any::<bool>(),
        position in 0usize..600,
        value in any::<u8>(),
        cut in 0usize..700,
    ) {
        let mut bytes = Spec::new(version, little, 16, [3, 3, 3]).file(&[1.0; 27]);
        let position = position % bytes.len();
        bytes[position] = value;
        bytes.truncate(cut.max(1));
        let _ = read_nifti(&bytes, &Limits::default());
        let _ = read_nifti(&gzip(&bytes), &Limits::default());
    }
}

fn cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gdl-lab"))
        .args(args)
        .output()
        .expect("the gdl-lab binary runs")
}

/// Runs the CLI, checks that it succeeded, and parses its last stdout line as JSON.
fn cli_ok_json(args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let output = cli(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap()
}

#[test]
fn cli_phantom_writes_files_that_cli_inspect_describes() {
    let dir = std::env::temp_dir().join(format!("gdl-lab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (image, label) = (dir.join("a.nii.gz"), dir.join("b.nii.gz"));
    let written = cli_ok_json(&[
        "phantom".as_ref(),
        "--size".as_ref(),
        "32".as_ref(),
        "--image".as_ref(),
        image.as_os_str(),
        "--label".as_ref(),
        label.as_os_str(),
    ]);
    assert_eq!(written["dims"], serde_json::json!([32, 32, 32]));

    let summary = cli_ok_json(&["inspect".as_ref(), image.as_os_str()]);
    assert_eq!(summary["dims"], serde_json::json!([32, 32, 32]));
    assert_eq!(summary["datatype"], "float32");
    assert_eq!(summary["nifti_version"], 1);
    assert_eq!(summary["affine"][0][0], 1.0);
    assert!(summary["max"].as_f64().unwrap() > summary["mean"].as_f64().unwrap());

    let labels = cli(&["inspect".as_ref(), label.as_os_str()]);
    let summary: serde_json::Value =
        serde_json::from_slice(labels.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    assert_eq!(summary["datatype"], "uint8");
    assert_eq!(summary["max"], 3.0);

    // A bad file: a sentence on stderr, exit status 2, nothing on stdout.
    let bad = dir.join("bad.nii");
    std::fs::write(&bad, b"definitely not a scan").unwrap();
    let output = cli(&["inspect".as_ref(), bad.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("not a NIfTI"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cli_train_reads_nifti_trains_and_writes_report_prediction_and_a_json_line() {
    let dir = std::env::temp_dir().join(format!("gdl-lab-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let volume = phantom(PhantomConfig { size: 32, seed: 3 });
    let geometry = Volume::from_data(volume.dims, 1.0, volume.image.clone());
    // BraTS numbering in the file: 3 is stored as 4, and must come back as 4.
    let brats: Vec<u8> = volume
        .labels
        .iter()
        .map(|&l| if l == 3 { 4 } else { l })
        .collect();
    let (image, label) = (dir.join("scan.nii.gz"), dir.join("labels.nii.gz"));
    std::fs::write(
        &image,
        write_nifti_gz(Voxels::Float32(&volume.image), &geometry).unwrap(),
    )
    .unwrap();
    std::fs::write(&label, write_label_map(&wide(&brats), &geometry).unwrap()).unwrap();
    let (report, prediction) = (dir.join("run.csv"), dir.join("pred.nii.gz"));
    let args: Vec<&std::ffi::OsStr> = vec![
        "train".as_ref(),
        "--image".as_ref(),
        image.as_os_str(),
        "--label".as_ref(),
        label.as_os_str(),
        "--model".as_ref(),
        "simple".as_ref(),
        "--patch".as_ref(),
        "16".as_ref(),
        "--steps".as_ref(),
        "3".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
        "--predict".as_ref(),
        prediction.as_os_str(),
        // The URL state's own spelling works as well as --steps-per-epoch.
        "--steps_per_epoch".as_ref(),
        "2".as_ref(),
    ];
    let summary = cli_ok_json(&args);
    let dice = summary["dice"].as_object().expect("dice per label");
    assert_eq!(dice.keys().collect::<Vec<_>>(), ["1", "2", "4"]);
    assert_eq!(summary["steps"], 3);
    assert!(summary["mean_foreground_dice"].as_f64().is_some());

    let csv = std::fs::read_to_string(&report).unwrap();
    assert_eq!(csv.lines().count(), 4, "a header and three steps:\n{csv}");
    assert!(csv.starts_with("step,epoch,model,lambda,total,warmup,gdl"));
    // Two steps an epoch: the third step belongs to epoch 1.
    assert!(
        csv.lines().nth(3).unwrap().starts_with("3,1,simple,"),
        "{csv}"
    );
    let predicted = read(&std::fs::read(&prediction).unwrap()).unwrap();
    assert_eq!(predicted.dims, [32, 32, 32]);
    assert_eq!(predicted.affine, geometry.affine);
    assert!(
        predicted
            .data
            .iter()
            .all(|&v| [0.0, 1.0, 2.0, 4.0].contains(&v))
    );

    // A bad setting is a sentence and exit status 2.
    let mut bad = args.clone();
    bad[6] = "resnet".as_ref();
    let output = cli(&bad);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("resnet"));
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Files as the page receives them: dropped together, in any order, sometimes as pairs.

fn named(name: &str, bytes: Vec<u8>) -> gdl_lab::volume::NamedFile {
    gdl_lab::volume::NamedFile {
        name: name.into(),
        bytes,
    }
}

/// A small phantom as an image file and a label file (BraTS-style label 4 for class 3).
fn phantom_files() -> (Vec<u8>, Vec<u8>, gdl_lab::volume::LabelledVolume) {
    let volume = phantom(PhantomConfig { size: 32, seed: 5 });
    let image = Volume::from_data(volume.dims, 1.0, volume.image.clone());
    let brats: Vec<u8> = volume
        .labels
        .iter()
        .map(|&c| if c == 3 { 4 } else { c })
        .collect();
    (
        write_nifti_gz(Voxels::Float32(&image.data), &image).unwrap(),
        write_label_map(&wide(&brats), &image).unwrap(),
        volume,
    )
}

#[test]
fn dropped_files_are_sorted_into_image_and_labels_in_either_order() {
    use gdl_lab::volume::load_dropped;
    let (image, labels, volume) = phantom_files();
    for files in [
        vec![
            named("t1.nii.gz", image.clone()),
            named("seg.nii.gz", labels.clone()),
        ],
        // Misnamed: the label map is told apart by its contents, not its name.
        vec![
            named("b.nii.gz", labels.clone()),
            named("a.nii.gz", image.clone()),
        ],
    ] {
        let loaded = load_dropped(&files, &Limits::default()).unwrap();
        assert_eq!(loaded.volume.labels, volume.labels);
        assert_eq!(loaded.volume.image, volume.image);
        assert_eq!(loaded.mapping.values, [0, 1, 2, 4]);
        assert!(!loaded.demo);
        assert_eq!(loaded.class_names[3], "enhancing tumour (label 4)");
        // A prediction goes back to the file's own label values.
        assert_eq!(loaded.mapping.file_values(&[0, 3]), [0, 4]);
    }
}

#[test]
fn a_dropped_hdr_img_pair_counts_as_one_scan() {
    use gdl_lab::volume::load_dropped;
    let mut spec = Spec::new(1, true, 16, [2, 2, 1]);
    spec.single = false;
    spec.vox_offset = 0.0;
    let header = spec.header();
    let data = encode(&[0.5, 1.5, 2.5, 3.5], 16, true);
    let mut labels = Spec::new(1, true, 2, [2, 2, 1]);
    labels.vox_offset = 352.0;
    let label_file = labels.file(&[0.0, 1.0, 1.0, 0.0]);
    let files = vec![
        named("Brain.IMG", data.clone()),
        named("mask.nii", label_file.clone()),
        named("Brain.hdr", header.clone()),
    ];
    let loaded = load_dropped(&files, &Limits::default()).unwrap();
    assert_eq!(loaded.image_name, "Brain.hdr");
    assert_eq!(loaded.volume.image, [0.5, 1.5, 2.5, 3.5]);
    assert_eq!(loaded.volume.labels, [0, 1, 1, 0]);

    // Each half alone says what is missing.
    let no_img = load_dropped(
        &[
            named("Brain.hdr", header),
            named("mask.nii", label_file.clone()),
        ],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(no_img.contains(".img"), "{no_img}");
    let no_hdr = load_dropped(
        &[named("Brain.img", data), named("mask.nii", label_file)],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(no_hdr.contains(".hdr"), "{no_hdr}");
}

#[test]
fn wrong_drops_get_a_sentence() {
    use gdl_lab::volume::load_dropped;
    let (image, labels, _) = phantom_files();
    let cases = [
        (vec![named("t1.nii.gz", image.clone())], "Only one scan"),
        (
            vec![
                named("a.nii.gz", labels.clone()),
                named("b.nii.gz", image.clone()),
                named("c.nii.gz", labels.clone()),
            ],
            "Several scans could be the label map (a.nii.gz, c.nii.gz)",
        ),
        (
            vec![
                named("a.nii.gz", image.clone()),
                named("b.nii.gz", image.clone()),
                named("c.nii.gz", image.clone()),
            ],
            "None of the 3 scans is a label map",
        ),
        // Two images: neither can be the label map.
        (
            vec![
                named("a.nii.gz", image.clone()),
                named("b.nii.gz", image.clone()),
            ],
            "non-negative integers",
        ),
        (
            vec![
                named("notes.txt", b"hello".to_vec()),
                named("seg.nii.gz", labels.clone()),
            ],
            "notes.txt",
        ),
    ];
    for (files, expected) in cases {
        let error = load_dropped(&files, &Limits::default()).unwrap_err();
        assert!(
            error.contains(expected),
            "expected “{expected}” in: {error}"
        );
    }
    // Shapes that differ are named.
    let small = Volume::from_data([2, 2, 2], 1.0, vec![0.0; 8]);
    let other = write_label_map(&[0; 8], &small).unwrap();
    let error = load_dropped(
        &[named("t1.nii.gz", image), named("seg.nii.gz", other)],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        error.contains("2×2×2") && error.contains("32×32×32"),
        "{error}"
    );
}

#[test]
fn the_demo_scan_is_the_phantom_with_its_tissue_names() {
    let demo = gdl_lab::volume::demo_scan(32);
    assert!(demo.demo);
    assert_eq!(demo.volume.dims, [32, 32, 32]);
    assert_eq!(demo.class_names.len(), demo.volume.classes);
    // One copy of the intensities: the geometry carries none.
    assert!(demo.image.data.is_empty());
    assert_eq!(demo.image.dims, demo.volume.dims);
    assert!(demo.mapping.is_identity());
}

/// Classes as the label values a file holds.
fn wide(labels: &[u8]) -> Vec<u16> {
    labels.iter().map(|&l| l as u16).collect()
}

/// FreeSurfer-style labels (up to 2035) load, keep their values, and a prediction goes back
/// into the file as uint16; NIfTI-1's limits and labels above 65535 get a sentence, no panic.
#[test]
fn large_label_values_are_kept_and_what_nifti_1_cannot_hold_is_refused() {
    let image = Volume::from_data([4, 1, 1], 1.0, vec![1.0, 2.0, 3.0, 4.0]);
    let aseg = Volume::from_data([4, 1, 1], 1.0, vec![0.0, 17.0, 2035.0, 17.0]);
    let (volume, mapping) = pair_image_and_labels(&image, &aseg).unwrap();
    assert_eq!(volume.labels, [0, 1, 2, 1]);
    let values = mapping.file_values(&volume.labels);
    assert_eq!(values, [0, 17, 2035, 17]);
    let written = write_label_map(&values, &image).unwrap();
    let back = read(&written).unwrap();
    assert_eq!(back.header.datatype, DataType::Uint16);
    assert_eq!(back.data, [0.0, 17.0, 2035.0, 17.0]);
    // Small values stay uint8.
    let small = read(&write_label_map(&[0, 1, 4, 2], &image).unwrap()).unwrap();
    assert_eq!(small.header.datatype, DataType::Uint8);

    let huge = Volume::from_data([4, 1, 1], 1.0, vec![0.0, 70000.0, 1.0, 1.0]);
    let error = pair_image_and_labels(&image, &huge).unwrap_err();
    assert!(
        error.contains("70000") && error.contains("65535"),
        "{error}"
    );

    let long = Volume::from_data([40_000, 1, 1], 1.0, vec![0.0; 40_000]);
    let error = write_label_map(&vec![0; 40_000], &long).unwrap_err();
    assert!(
        error.contains("32767") && error.contains("40000 along x"),
        "{error}"
    );
    let error = write_nifti_gz(Voxels::Float32(&[0.0; 3]), &image).unwrap_err();
    assert!(
        error.contains("3 values") && error.contains("4 voxels"),
        "{error}"
    );
}

/// A BraTS case folder dropped at once: the label map found by content whatever its name, every
/// modality an input channel in BraTS's order by default, one alone on request, and grids that
/// disagree named.
#[test]
fn a_case_folder_loads_with_its_modalities() {
    use gdl_lab::volume::{load_case, load_dropped};
    let (image, labels, volume) = phantom_files();
    let modalities = ["flair", "t1", "t1ce", "t2"];
    let mut files: Vec<_> = modalities
        .iter()
        .map(|m| named(&format!("BraTS2021_00007_{m}.nii.gz"), image.clone()))
        .collect();
    // Named like an image: found by its content.
    files.insert(2, named("BraTS2021_00007_x.nii.gz", labels.clone()));
    let scan = load_dropped(&files, &Limits::default()).unwrap();
    assert_eq!(scan.image_name, "BraTS2021_00007_t1.nii.gz");
    assert_eq!(scan.label_name, "BraTS2021_00007_x.nii.gz");
    let order = ["t1", "t1ce", "t2", "flair"].map(|m| format!("BraTS2021_00007_{m}.nii.gz"));
    assert_eq!(scan.modalities, order);
    assert_eq!(scan.images, order);
    assert_eq!(scan.volume.channels, 4);
    assert_eq!(scan.volume.image.len(), 4 * volume.voxel_count());
    assert_eq!(scan.volume.labels, volume.labels);
    assert!(scan.warnings.iter().any(|w| w.contains("BraTS 2021")));
    let flair = load_case(
        &files,
        &Limits::default(),
        Some(&["BraTS2021_00007_flair.nii.gz".to_string()]),
    );
    let flair = flair.unwrap();
    assert_eq!(flair.image_name, "BraTS2021_00007_flair.nii.gz");
    assert_eq!((flair.volume.channels, flair.images.len()), (1, 4));
    // Two of them, asked for in any order: BraTS's order all the same.
    let names = ["flair", "t2"].map(|m| format!("BraTS2021_00007_{m}.nii.gz"));
    let two = load_case(&files, &Limits::default(), Some(&names)).unwrap();
    assert_eq!(two.modalities, [names[1].clone(), names[0].clone()]);
    assert_eq!(two.volume.channels, 2);
    let none = load_case(&files, &Limits::default(), Some(&[])).unwrap_err();
    assert!(none.contains("at least one"), "{none}");
    let missing = load_case(&files, &Limits::default(), Some(&["t3.nii.gz".into()])).unwrap_err();
    assert!(missing.contains("t3.nii.gz is not among"), "{missing}");

    // One modality on another grid: both files are named.
    let moved = Volume::from_data(volume.dims, 1.0, volume.image.clone()).with_affine([
        [1.0, 0.0, 0.0, 5.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    files[0] = named(
        "BraTS2021_00007_flair.nii.gz",
        write_nifti_gz(Voxels::Float32(&volume.image), &moved).unwrap(),
    );
    let error = load_dropped(&files, &Limits::default()).unwrap_err();
    assert!(
        error.contains("BraTS2021_00007_flair.nii.gz")
            && error.contains("BraTS2021_00007_x.nii.gz"),
        "{error}"
    );
    assert!(error.contains("same grid"), "{error}");
}
