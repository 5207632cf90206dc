//! NIfTI-1 and NIfTI-2 reading and writing, from and to bytes (the browser hands us bytes).
//!
//! The `nifti` crate parses NIfTI-1 headers; it has no NIfTI-2, its `from_reader` does not
//! gunzip, and its writer needs ndarray and a file path, so the rest is written here: version
//! and gzip detection by magic bytes, the NIfTI-2 header, the voxel conversion, limits checked
//! before anything large is allocated, and a small NIfTI-1 writer that returns bytes (a download
//! in the page). Every failure is a sentence, never a panic.
//!
//! This file depends only on std, `nifti` and `flate2`, so that the fuzz target can include it
//! without building burn.

use std::io::Read;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// A bad file, in one sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError(pub String);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadError {}

fn fail<T>(message: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError(message.into()))
}

/// How large a volume may be, checked before allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The first volume as f32 may take at most this many bytes.
    pub max_f32_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_f32_bytes: 512 << 20,
        }
    }
}

/// The voxel types gdl-lab reads, with their NIfTI codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Uint8,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Float32,
    Float64,
}

impl DataType {
    pub fn from_code(code: i16) -> Option<Self> {
        Some(match code {
            2 => DataType::Uint8,
            256 => DataType::Int8,
            4 => DataType::Int16,
            512 => DataType::Uint16,
            8 => DataType::Int32,
            768 => DataType::Uint32,
            1024 => DataType::Int64,
            16 => DataType::Float32,
            64 => DataType::Float64,
            _ => return None,
        })
    }

    pub fn code(self) -> i16 {
        match self {
            DataType::Uint8 => 2,
            DataType::Int8 => 256,
            DataType::Int16 => 4,
            DataType::Uint16 => 512,
            DataType::Int32 => 8,
            DataType::Uint32 => 768,
            DataType::Int64 => 1024,
            DataType::Float32 => 16,
            DataType::Float64 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Uint8 => "uint8",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::Uint16 => "uint16",
            DataType::Int32 => "int32",
            DataType::Uint32 => "uint32",
            DataType::Int64 => "int64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
        }
    }

    pub fn bytes(self) -> usize {
        match self {
            DataType::Uint8 | DataType::Int8 => 1,
            DataType::Int16 | DataType::Uint16 => 2,
            DataType::Int32 | DataType::Uint32 | DataType::Float32 => 4,
            DataType::Int64 | DataType::Float64 => 8,
        }
    }

    pub fn is_integer(self) -> bool {
        !matches!(self, DataType::Float32 | DataType::Float64)
    }
}

/// The header fields gdl-lab uses, whichever NIfTI version they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    pub little_endian: bool,
    pub datatype: DataType,
    /// `dim[1..=dim[0]]`: x, y, z, t, …
    pub dims: Vec<usize>,
    pub pixdim: [f64; 8],
    pub vox_offset: u64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    /// quatern_b, c, d, then qoffset_x, y, z.
    pub quatern: [f64; 6],
    pub srow: [[f64; 4]; 3],
    pub xyzt_units: u8,
    /// True for a single `.nii` file ("n+1"/"n+2"), false for a `.hdr` of a pair.
    pub single_file: bool,
}

/// A scan: the first 3D volume of a NIfTI file as f32, with its geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// Size along x, y, z.
    pub dims: [usize; 3],
    /// Voxel size in the file's units (usually mm).
    pub spacing: [f64; 3],
    /// Voxel (i, j, k, 1) → world coordinates, by nibabel's rule: the sform when
    /// `sform_code > 0`, else the qform when `qform_code > 0`, else the pixdim diagonal.
    pub affine: [[f64; 4]; 4],
    /// Intensities after `scl_slope`/`scl_inter`, x-fastest: index = x + nx·(y + ny·z).
    pub data: Vec<f32>,
    pub header: Header,
    /// Things the user should know (a 4D file, NaN voxels replaced …), one sentence each.
    pub warnings: Vec<String>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// True when `bytes` start like a gzip stream.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Reads a single-file NIfTI (`.nii` or `.nii.gz`, version 1 or 2). A `.hdr` header is refused
/// with a hint to give its `.img` too.
pub fn read_nifti(bytes: &[u8], limits: &Limits) -> Result<Volume, ReadError> {
    let (header, bytes) = header_and_bytes(bytes, limits, true)?;
    if !header.single_file {
        return fail(
            "This is the header of a .hdr/.img pair; load its .img file together with it.",
        );
    }
    volume_from(header, &bytes, limits)
}

/// Most 3D volumes a 4D file brings as channels (the Decathlon's have 1 to 4); a file with
/// more (a time series) gives its first volume, as [`read_nifti`] does.
pub const MAX_CHANNELS: usize = 16;

/// Reads a single-file NIfTI whose 4th axis holds co-registered modalities (the Medical
/// Segmentation Decathlon's images), one [`Volume`] per 3D volume in file order, each with a
/// 3D header; a 3D file (or one with more than [`MAX_CHANNELS`] volumes) gives one volume.
pub fn read_nifti_channels(bytes: &[u8], limits: &Limits) -> Result<Vec<Volume>, ReadError> {
    let (header, _) = header_and_bytes(bytes, limits, false)?;
    let count = match header.dims.get(3..) {
        Some([count]) => *count,
        Some([count, rest @ ..]) if rest.iter().all(|&d| d == 1) => *count,
        _ => 1,
    };
    if !header.single_file || count <= 1 || count > MAX_CHANNELS {
        return Ok(vec![read_nifti(bytes, limits)?]);
    }
    let each = data_bytes(&header, limits)?;
    let needed = header.vox_offset + each * count as u64;
    let all = if is_gzip(bytes) {
        gunzip(bytes, needed)?
    } else {
        bytes.to_vec()
    };
    (0..count)
        .map(|index| {
            let mut one = header.clone();
            one.vox_offset = header.vox_offset + each * index as u64;
            one.dims.truncate(3);
            volume_from(one, &all, limits)
        })
        .collect()
}

/// Reads a `.hdr`/`.img` pair (each may be gzipped).
pub fn read_nifti_pair(header: &[u8], image: &[u8], limits: &Limits) -> Result<Volume, ReadError> {
    let (header, _) = header_and_bytes(header, limits, false)?;
    let image = if is_gzip(image) {
        let needed = header.vox_offset + data_bytes(&header, limits)?;
        gunzip(image, needed)?
    } else {
        image.to_vec()
    };
    volume_from(header, &image, limits)
}

/// Reads a file from disk: `.nii`, `.nii.gz`, or a `.hdr` whose `.img` lies beside it.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_path(path: &std::path::Path, limits: &Limits) -> Result<Volume, ReadError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|error| ReadError(format!("Cannot read {}: {error}.", path.display())))
    };
    let bytes = read(path)?;
    match img_beside(path) {
        Some(Ok(image)) => read_nifti_pair(&bytes, &read(&image)?, limits),
        Some(Err(message)) => Err(ReadError(message)),
        None => read_nifti(&bytes, limits),
    }
}

/// For a `.hdr` (or `.hdr.gz`), the `.img` beside it, or a sentence when there is none; `None`
/// for any other file.
#[cfg(not(target_arch = "wasm32"))]
pub fn img_beside(path: &std::path::Path) -> Option<Result<std::path::PathBuf, String>> {
    let name = path.to_string_lossy().to_lowercase();
    if !(name.ends_with(".hdr") || name.ends_with(".hdr.gz")) {
        return None;
    }
    let stem = name.trim_end_matches(".gz").trim_end_matches(".hdr").len();
    let base = &path.to_string_lossy()[..stem];
    Some(
        [".img", ".img.gz", ".IMG"]
            .iter()
            .map(|ext| std::path::PathBuf::from(format!("{base}{ext}")))
            .find(|candidate| candidate.exists())
            .ok_or_else(|| format!("{} has no .img file beside it.", path.display())),
    )
}

/// Decompresses at most `limit` bytes; a corrupt or truncated stream is an error only when the
/// bytes it did yield are too few (the caller checks the length).
fn gunzip(bytes: &[u8], limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    match GzDecoder::new(bytes).take(limit).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => fail(format!(
            "The gzip stream is truncated: it ends after {} bytes.",
            out.len()
        )),
        Err(error) => fail(format!("The gzip data is corrupt: {error}.")),
    }
}

/// The header, and the file's bytes (decompressed as far as the header says is needed).
fn header_and_bytes(
    bytes: &[u8],
    limits: &Limits,
    single: bool,
) -> Result<(Header, Vec<u8>), ReadError> {
    if bytes.is_empty() {
        return fail("The file is empty.");
    }
    if !is_gzip(bytes) {
        return Ok((parse_header(bytes)?, bytes.to_vec()));
    }
    // Decompress the header first, so that an absurd header is refused before the rest is
    // inflated (a small .gz can expand to gigabytes).
    let head = gunzip(bytes, 540)?;
    let header = parse_header(&head).map_err(|error| {
        // A damaged stream can inflate to garbage before its checksum is reached; blame the
        // gzip when the whole stream (up to a cap) does not check out.
        match gunzip(bytes, 64 << 20) {
            Err(gzip_error) => gzip_error,
            Ok(_) => error,
        }
    })?;
    if !single {
        return Ok((header, head));
    }
    let needed = header.vox_offset + data_bytes(&header, limits)?;
    Ok((header, gunzip(bytes, needed)?))
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().expect("N bytes")
}

/// Field readers for one byte order.
struct Fields<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Fields<'_> {
    fn i16(&self, at: usize) -> i16 {
        let raw = read_array(self.bytes, at);
        if self.little {
            i16::from_le_bytes(raw)
        } else {
            i16::from_be_bytes(raw)
        }
    }
    fn i32(&self, at: usize) -> i32 {
        let raw = read_array(self.bytes, at);
        if self.little {
            i32::from_le_bytes(raw)
        } else {
            i32::from_be_bytes(raw)
        }
    }
    fn i64(&self, at: usize) -> i64 {
        let raw = read_array(self.bytes, at);
        if self.little {
            i64::from_le_bytes(raw)
        } else {
            i64::from_be_bytes(raw)
        }
    }
    fn f64(&self, at: usize) -> f64 {
        let raw = read_array(self.bytes, at);
        if self.little {
            f64::from_le_bytes(raw)
        } else {
            f64::from_be_bytes(raw)
        }
    }
}

/// Parses and checks a NIfTI-1 or NIfTI-2 header from the start of `bytes`.
pub fn parse_header(bytes: &[u8]) -> Result<Header, ReadError> {
    if bytes.len() < 4 {
        return fail(format!(
            "The file is too short to be NIfTI: {} bytes, and a header alone has 348.",
            bytes.len()
        ));
    }
    let size = read_array::<4>(bytes, 0);
    let (version, little, header_size) = match (i32::from_le_bytes(size), i32::from_be_bytes(size))
    {
        (348, _) => (1, true, 348),
        (_, 348) => (1, false, 348),
        (540, _) => (2, true, 540),
        (_, 540) => (2, false, 540),
        (le, _) => {
            return fail(format!(
                "This is not a NIfTI file: its first four bytes (sizeof_hdr) read {le}, where \
                 NIfTI-1 has 348 and NIfTI-2 has 540."
            ));
        }
    };
    if bytes.len() < header_size {
        return fail(format!(
            "The header is truncated: NIfTI-{version} needs {header_size} bytes, the file has {}.",
            bytes.len()
        ));
    }
    let header = if version == 1 {
        parse_nifti1(bytes, little)?
    } else {
        parse_nifti2(bytes, little)?
    };
    Ok(header)
}

fn check_magic(magic: &[u8], version: u8) -> Result<bool, ReadError> {
    let digit = b'0' + version;
    match magic {
        [b'n', b'+', d, 0, ..] if *d == digit => Ok(true),
        [b'n', b'i', d, 0, ..] if *d == digit => Ok(false),
        _ => fail(format!(
            "The NIfTI-{version} magic is wrong: {:?} instead of \"n+{version}\" or \"ni{version}\".",
            String::from_utf8_lossy(&magic[..4.min(magic.len())])
        )),
    }
}

/// The first `dim[0]` dimensions, each checked to be ≥ 1.
fn checked_dims(dim: &[i64; 8]) -> Result<Vec<usize>, ReadError> {
    let rank = dim[0];
    if !(1..=7).contains(&rank) {
        return fail(format!(
            "dim[0] (the number of dimensions) is {rank}; NIfTI allows 1 to 7."
        ));
    }
    dim[1..=rank as usize]
        .iter()
        .enumerate()
        .map(|(axis, &size)| {
            usize::try_from(size)
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| {
                    ReadError(format!(
                        "dim[{}] is {size}; every dimension must be at least 1.",
                        axis + 1
                    ))
                })
        })
        .collect()
}

fn parse_nifti1(bytes: &[u8], little: bool) -> Result<Header, ReadError> {
    let parsed = nifti::NiftiHeader::from_reader(&bytes[..348]).map_err(|error| match error {
        nifti::NiftiError::InvalidFormat => ReadError(format!(
            "The NIfTI-1 magic is wrong: {:?} instead of \"n+1\" or \"ni1\".",
            String::from_utf8_lossy(&bytes[344..348])
        )),
        other => ReadError(format!("The NIfTI-1 header cannot be read: {other}.")),
    })?;
    let single_file = check_magic(&parsed.magic, 1)?;
    // The crate guesses the byte order from dim[0]; sizeof_hdr decides it here. When they
    // disagree, dim[0] was outside 1..7 in the file's own byte order.
    let crate_little = parsed.endianness == nifti::Endianness::Little;
    let dim0 = if crate_little == little {
        parsed.dim[0] as i16
    } else {
        parsed.dim[0].swap_bytes() as i16
    };
    if !(1..=7).contains(&dim0) {
        return fail(format!(
            "dim[0] (the number of dimensions) is {dim0}; NIfTI allows 1 to 7."
        ));
    }
    let mut dim = [0i64; 8];
    for (out, &value) in dim.iter_mut().zip(&parsed.dim) {
        *out = value as i16 as i64;
    }
    let datatype = DataType::from_code(parsed.datatype).ok_or_else(|| {
        ReadError(format!(
            "Voxel datatype code {} is not supported; gdl-lab reads uint8, int8, int16, uint16, \
             int32, uint32, int64, float32 and float64.",
            parsed.datatype
        ))
    })?;
    let vox_offset = parsed.vox_offset as f64;
    let srow = [parsed.srow_x, parsed.srow_y, parsed.srow_z].map(|row| row.map(|v| v as f64));
    Ok(Header {
        version: 1,
        little_endian: little,
        datatype,
        dims: checked_dims(&dim)?,
        pixdim: parsed.pixdim.map(|v| v as f64),
        vox_offset: checked_offset(vox_offset, single_file, 352)?,
        scl_slope: parsed.scl_slope as f64,
        scl_inter: parsed.scl_inter as f64,
        qform_code: parsed.qform_code as i32,
        sform_code: parsed.sform_code as i32,
        quatern: [
            parsed.quatern_b,
            parsed.quatern_c,
            parsed.quatern_d,
            parsed.quatern_x,
            parsed.quatern_y,
            parsed.quatern_z,
        ]
        .map(|v| v as f64),
        srow,
        xyzt_units: parsed.xyzt_units,
        single_file,
    })
}

/// NIfTI-2: the same fields as NIfTI-1, widened to 64 bits and reordered (540 bytes).
fn parse_nifti2(bytes: &[u8], little: bool) -> Result<Header, ReadError> {
    let f = Fields { bytes, little };
    let single_file = check_magic(&bytes[4..12], 2)?;
    let mut dim = [0i64; 8];
    for (i, value) in dim.iter_mut().enumerate() {
        *value = f.i64(16 + 8 * i);
    }
    let code = f.i16(12);
    let datatype = DataType::from_code(code).ok_or_else(|| {
        ReadError(format!(
            "Voxel datatype code {code} is not supported; gdl-lab reads uint8, int8, int16, \
             uint16, int32, uint32, int64, float32 and float64."
        ))
    })?;
    let mut pixdim = [0.0; 8];
    for (i, value) in pixdim.iter_mut().enumerate() {
        *value = f.f64(104 + 8 * i);
    }
    let row = |at: usize| [0, 1, 2, 3].map(|i| f.f64(at + 8 * i));
    Ok(Header {
        version: 2,
        little_endian: little,
        datatype,
        dims: checked_dims(&dim)?,
        pixdim,
        vox_offset: checked_offset(f.i64(168) as f64, single_file, 544)?,
        scl_slope: f.f64(176),
        scl_inter: f.f64(184),
        qform_code: f.i32(344),
        sform_code: f.i32(348),
        quatern: [352, 360, 368, 376, 384, 392].map(|at| f.f64(at)),
        srow: [row(400), row(432), row(464)],
        xyzt_units: f.i32(500) as u8,
        single_file,
    })
}

/// `vox_offset` as a byte position. In a single file it cannot point into the header (some
/// writers leave it 0, which nibabel also reads as "right after the header").
fn checked_offset(offset: f64, single_file: bool, after_header: u64) -> Result<u64, ReadError> {
    if !offset.is_finite() || offset < 0.0 {
        return fail(format!("vox_offset is {offset}, not a byte position."));
    }
    // Header extensions are at most a few MiB in practice; a larger offset is a corrupt header,
    // and honouring it would let a small .gz inflate without bound.
    if offset > (256 << 20) as f64 {
        return fail(format!(
            "vox_offset is {offset}, far past any header and its extensions; the header is corrupt."
        ));
    }
    let offset = offset as u64;
    Ok(if single_file && offset < after_header {
        after_header
    } else {
        offset
    })
}

/// Bytes of voxel data in the first 3D volume, refused when over the limit or overflowing.
fn data_bytes(header: &Header, limits: &Limits) -> Result<u64, ReadError> {
    let mut total: u64 = 1;
    for &size in &header.dims {
        total = total.checked_mul(size as u64).ok_or_else(|| {
            ReadError(format!(
                "The dimensions {:?} multiply past 2⁶⁴ voxels; the header is corrupt.",
                header.dims
            ))
        })?;
    }
    let voxels = first_volume_dims(header)
        .iter()
        .map(|&d| d as u64)
        .product::<u64>();
    if voxels.saturating_mul(4) > limits.max_f32_bytes {
        return fail(format!(
            "The volume is {} voxels ({:?}), {} MiB as f32; gdl-lab's limit is {} MiB.",
            voxels,
            first_volume_dims(header),
            voxels.saturating_mul(4) >> 20,
            limits.max_f32_bytes >> 20
        ));
    }
    Ok(voxels * header.datatype.bytes() as u64)
}

fn first_volume_dims(header: &Header) -> [usize; 3] {
    [0, 1, 2].map(|axis| header.dims.get(axis).copied().unwrap_or(1))
}

fn volume_from(header: Header, bytes: &[u8], limits: &Limits) -> Result<Volume, ReadError> {
    let length = data_bytes(&header, limits)?;
    let start = header.vox_offset;
    if start > bytes.len() as u64 {
        return fail(format!(
            "vox_offset {start} lies past the end of the data ({} bytes).",
            bytes.len()
        ));
    }
    let available = bytes.len() as u64 - start;
    if available < length {
        return fail(format!(
            "The file is truncated: the header promises {length} bytes of voxels after byte \
             {start}, but only {available} are there."
        ));
    }
    let raw = &bytes[start as usize..(start + length) as usize];
    let mut data = convert(raw, header.datatype, header.little_endian);

    let mut warnings = Vec::new();
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    if slope != 0.0 && slope.is_finite() && inter.is_finite() && !(slope == 1.0 && inter == 0.0) {
        for value in &mut data {
            *value = (*value as f64 * slope + inter) as f32;
        }
    }
    let bad = data.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        for value in data.iter_mut().filter(|v| !v.is_finite()) {
            *value = 0.0;
        }
        warnings.push(format!("{bad} voxels were NaN or infinite and are now 0."));
    }
    if header.dims.len() > 3 && header.dims[3..].iter().any(|&d| d > 1) {
        warnings.push(format!(
            "The file holds {:?} (4D or more); gdl-lab uses its first 3D volume.",
            header.dims
        ));
    }
    let dims = first_volume_dims(&header);
    let spacing = [1, 2, 3].map(|i| header.pixdim[i].abs());
    Ok(Volume {
        dims,
        spacing,
        affine: best_affine(&header),
        data,
        header,
        warnings,
    })
}

fn convert(raw: &[u8], datatype: DataType, little: bool) -> Vec<f32> {
    macro_rules! each {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            raw.chunks_exact(N)
                .map(|chunk| {
                    let bytes: [u8; N] = chunk.try_into().expect("exact chunk");
                    let value = if little {
                        <$t>::from_le_bytes(bytes)
                    } else {
                        <$t>::from_be_bytes(bytes)
                    };
                    value as f32
                })
                .collect()
        }};
    }
    match datatype {
        DataType::Uint8 => raw.iter().map(|&v| v as f32).collect(),
        DataType::Int8 => raw.iter().map(|&v| v as i8 as f32).collect(),
        DataType::Int16 => each!(i16),
        DataType::Uint16 => each!(u16),
        DataType::Int32 => each!(i32),
        DataType::Uint32 => each!(u32),
        DataType::Int64 => each!(i64),
        DataType::Float32 => each!(f32),
        DataType::Float64 => each!(f64),
    }
}

/// The pixdim nibabel works with once its header checks have fixed a file on loading: qfac
/// (`pixdim[0]`) 1 unless it is exactly −1, spacings of 0 made 1, negative spacings made positive.
fn nibabel_pixdim(pixdim: &[f64; 8]) -> [f64; 8] {
    let mut fixed = *pixdim;
    fixed[0] = if pixdim[0] == -1.0 { -1.0 } else { 1.0 };
    for spacing in &mut fixed[1..4] {
        *spacing = if *spacing == 0.0 { 1.0 } else { spacing.abs() };
    }
    fixed
}

/// The rotation of a qform's quaternion (b, c, d; a ≥ 0 implied) exactly as nibabel computes
/// it: `quaternions.fillpositive` with the threshold of a float32 header (3·eps, under which w²
/// counts as 0, so a half turn stored in float32 stays a pure half turn), then `quat2mat`, which
/// normalises by the quaternion's norm. Where w² is negative beyond the threshold nibabel refuses
/// the file; the NIfTI C library (`nifti_quatern_to_mat44`) takes w = 0 and normalises (b, c, d),
/// and so does gdl-lab, since the normalisation below does exactly that.
fn quaternion_rotation(b: f64, c: f64, d: f64) -> [[f64; 3]; 3] {
    const W2_THRESHOLD: f64 = 3.0 * f32::EPSILON as f64;
    let w2 = 1.0 - (b * b + c * c + d * d);
    let w = if w2.abs() < W2_THRESHOLD || w2 < 0.0 {
        0.0
    } else {
        w2.sqrt()
    };
    let norm = w * w + b * b + c * c + d * d;
    if norm < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / norm;
    let (x, y, z) = (b * s, c * s, d * s);
    let (wx, wy, wz) = (w * x, w * y, w * z);
    let (xx, xy, xz) = (b * x, b * y, b * z);
    let (yy, yz, zz) = (c * y, c * z, d * z);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// nibabel's `get_best_affine`: sform, else qform, else the base affine (pixdim on the diagonal,
/// x flipped, centred on the volume).
pub fn best_affine(header: &Header) -> [[f64; 4]; 4] {
    if header.sform_code > 0 {
        let [x, y, z] = header.srow;
        return [x, y, z, [0.0, 0.0, 0.0, 1.0]];
    }
    let pixdim = nibabel_pixdim(&header.pixdim);
    if header.qform_code > 0 {
        let [b, c, d, qx, qy, qz] = header.quatern;
        let rotation = quaternion_rotation(b, c, d);
        let zoom = [pixdim[1], pixdim[2], pixdim[3] * pixdim[0]];
        let offset = [qx, qy, qz];
        let mut affine = [[0.0; 4]; 4];
        for row in 0..3 {
            for col in 0..3 {
                affine[row][col] = rotation[row][col] * zoom[col];
            }
            affine[row][3] = offset[row];
        }
        affine[3][3] = 1.0;
        return affine;
    }
    let dims = first_volume_dims(header);
    let mut affine = [[0.0; 4]; 4];
    for axis in 0..3 {
        let zoom = if axis == 0 {
            -pixdim[axis + 1]
        } else {
            pixdim[axis + 1]
        };
        affine[axis][axis] = zoom;
        affine[axis][3] = -zoom * (dims[axis] as f64 - 1.0) / 2.0;
    }
    affine[3][3] = 1.0;
    affine
}

impl Volume {
    /// A new scan with a plain geometry: `spacing` mm voxels, centred on the origin, stored as an
    /// sform (code 2, "aligned"). Used for the phantom.
    pub fn from_data(dims: [usize; 3], spacing: f64, data: Vec<f32>) -> Self {
        let mut srow = [[0.0; 4]; 3];
        for (axis, row) in srow.iter_mut().enumerate() {
            row[axis] = spacing;
            row[3] = -spacing * (dims[axis] as f64 - 1.0) / 2.0;
        }
        let header = Header {
            version: 1,
            little_endian: true,
            datatype: DataType::Float32,
            dims: dims.to_vec(),
            pixdim: [1.0, spacing, spacing, spacing, 1.0, 1.0, 1.0, 1.0],
            vox_offset: 352,
            scl_slope: 1.0,
            scl_inter: 0.0,
            qform_code: 0,
            sform_code: 2,
            quatern: [0.0; 6],
            srow,
            xyzt_units: 2, // millimetres
            single_file: true,
        };
        Self {
            dims,
            spacing: [spacing; 3],
            affine: best_affine(&header),
            data,
            header,
            warnings: Vec::new(),
        }
    }
}

impl Volume {
    /// This geometry with another voxel-to-world matrix (stored as the sform and the qform's
    /// code left at 0, so every reader uses it).
    pub fn with_affine(mut self, affine: [[f64; 4]; 4]) -> Self {
        self.header.srow = [affine[0], affine[1], affine[2]];
        self.header.sform_code = 1; // scanner coordinates
        self.header.qform_code = 0;
        self.affine = best_affine(&self.header);
        self
    }
}

/// Voxels to write.
pub enum Voxels<'a> {
    Uint8(&'a [u8]),
    Int16(&'a [i16]),
    Uint16(&'a [u16]),
    Float32(&'a [f32]),
}

/// A label map as a gzipped NIfTI-1 file with the geometry of `like` (the same dims, pixdim,
/// units, qform and sform, so it overlays the scan in any viewer): uint8 when every value fits,
/// else uint16.
pub fn write_label_map(labels: &[u16], like: &Volume) -> Result<Vec<u8>, String> {
    if labels.iter().all(|&value| value <= u8::MAX as u16) {
        let bytes: Vec<u8> = labels.iter().map(|&value| value as u8).collect();
        write_nifti_gz(Voxels::Uint8(&bytes), like)
    } else {
        write_nifti_gz(Voxels::Uint16(labels), like)
    }
}

/// A gzipped single-file NIfTI-1 with the geometry of `like` and the given voxels (x-fastest,
/// one per voxel of `like.dims`); a sentence for what NIfTI-1 cannot hold.
pub fn write_nifti_gz(voxels: Voxels<'_>, like: &Volume) -> Result<Vec<u8>, String> {
    let (datatype, payload): (DataType, Vec<u8>) = match voxels {
        Voxels::Uint8(values) => (DataType::Uint8, values.to_vec()),
        Voxels::Uint16(values) => (
            DataType::Uint16,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        Voxels::Int16(values) => (
            DataType::Int16,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        Voxels::Float32(values) => (
            DataType::Float32,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    };
    let voxels = like.dims.iter().product::<usize>();
    if payload.len() != voxels * datatype.bytes() {
        return Err(format!(
            "{} values were given for a volume of {voxels} voxels.",
            payload.len() / datatype.bytes()
        ));
    }
    let mut dim = [1i16; 8];
    dim[0] = 3;
    for axis in 0..3 {
        dim[axis + 1] = i16::try_from(like.dims[axis]).map_err(|_| {
            format!(
                "NIfTI-1 stores each edge as a 16-bit number, at most 32767 voxels; this volume \
                 has {} along {}.",
                like.dims[axis],
                ["x", "y", "z"][axis]
            )
        })?;
    }
    let mut header = vec![0u8; 352];
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    let h = &like.header;
    put(0, &348i32.to_le_bytes());
    for (i, value) in dim.iter().enumerate() {
        put(40 + 2 * i, &value.to_le_bytes());
    }
    put(70, &datatype.code().to_le_bytes());
    put(72, &(8 * datatype.bytes() as i16).to_le_bytes()); // bitpix
    let mut pixdim = h.pixdim;
    pixdim[0] = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    for (i, value) in pixdim.iter().enumerate() {
        put(76 + 4 * i, &(*value as f32).to_le_bytes());
    }
    put(108, &352f32.to_le_bytes()); // vox_offset
    put(112, &1f32.to_le_bytes()); // scl_slope
    put(116, &0f32.to_le_bytes()); // scl_inter
    put(123, &[h.xyzt_units]);
    put(148, b"gdl-lab");
    put(252, &(h.qform_code as i16).to_le_bytes());
    put(254, &(h.sform_code as i16).to_le_bytes());
    for (i, value) in h.quatern.iter().enumerate() {
        put(256 + 4 * i, &(*value as f32).to_le_bytes());
    }
    for (r, row) in h.srow.iter().enumerate() {
        for (c, value) in row.iter().enumerate() {
            put(280 + 16 * r + 4 * c, &(*value as f32).to_le_bytes());
        }
    }
    put(344, b"n+1\0");
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    use std::io::Write;
    encoder
        .write_all(&header)
        .and_then(|_| encoder.write_all(&payload))
        .expect("writing to memory");
    Ok(encoder.finish().expect("writing to memory"))
}
