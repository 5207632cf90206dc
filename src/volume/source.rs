//! Where a case's intensities can be read again: the files they came from, kept as the person
//! gave them (a BraTS modality is ~4 MB gzipped against 36 MB as f32), so that a set of
//! full-size cases need not keep every channel of every case in memory between preparations.

use std::sync::Arc;

use super::nifti::Limits;
use super::reading::{NamedFile, Origin, read_scans_traced};

/// A case's channels, each found again as the `volume`-th volume of the scan read from a file
/// (or a `.hdr` with its `.img`).
#[derive(Clone)]
pub struct ImageSource {
    /// The files the channels are in (each file once), shared by the clones of a scan.
    files: Arc<Vec<NamedFile>>,
    /// Per channel, in channel order: the indices in `files` of its file(s), and its volume.
    channels: Vec<Origin>,
    limits: Limits,
}

impl std::fmt::Debug for ImageSource {
    // The names, not megabytes of file bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.files.iter().map(|file| file.name.as_str()).collect();
        f.debug_struct("ImageSource")
            .field("files", &names)
            .field("channels", &self.channels)
            .finish()
    }
}

impl ImageSource {
    /// The channels `channels` (per channel: its file indices in `files`, and its volume in
    /// them, as [`read_scans_traced`] gives them); only the files they need are kept.
    pub(super) fn new(
        files: &[NamedFile],
        channels: impl Iterator<Item = Origin>,
        limits: Limits,
    ) -> Self {
        let mut kept: Vec<usize> = Vec::new();
        let channels = channels
            .map(|(indices, volume)| {
                let local = indices
                    .into_iter()
                    .map(|index| match kept.iter().position(|&k| k == index) {
                        Some(at) => at,
                        None => {
                            kept.push(index);
                            kept.len() - 1
                        }
                    })
                    .collect();
                (local, volume)
            })
            .collect();
        Self {
            files: Arc::new(kept.into_iter().map(|i| files[i].clone()).collect()),
            channels,
            limits,
        }
    }

    /// Every channel's intensities, one plane after the other (the layout of
    /// [`super::LabelledVolume::image`]). A file read once serves all its channels.
    pub fn read(&self) -> Result<Vec<f32>, String> {
        let mut image: Vec<f32> = Vec::new();
        let mut last: Option<(&[usize], Vec<Option<super::Volume>>)> = None;
        for (indices, volume) in &self.channels {
            if last
                .as_ref()
                .is_none_or(|(read, _)| *read != indices.as_slice())
            {
                let volumes = read_scans_traced(&self.files_of(indices), &self.limits)?
                    .into_iter()
                    .map(|(_, volume, _)| Some(volume))
                    .collect();
                last = Some((indices, volumes));
            }
            let (_, volumes) = last.as_mut().expect("read above");
            let plane = volumes
                .get_mut(*volume)
                .and_then(Option::take)
                .ok_or_else(|| "a case's file no longer holds the volume it held".to_string())?;
            if image.is_empty() {
                // Grown once: every channel has the first one's size.
                image.reserve_exact(plane.data.len() * self.channels.len());
            }
            image.extend_from_slice(&plane.data);
        }
        Ok(image)
    }

    /// Channel `index`'s intensities alone (only its file is read).
    pub fn read_channel(&self, index: usize) -> Result<Vec<f32>, String> {
        let (indices, volume) = self
            .channels
            .get(index)
            .ok_or_else(|| format!("there is no channel {}", index + 1))?;
        read_scans_traced(&self.files_of(indices), &self.limits)?
            .into_iter()
            .nth(*volume)
            .map(|(_, volume, _)| volume.data)
            .ok_or_else(|| "a case's file no longer holds the volume it held".to_string())
    }

    /// The files at `indices`: a slice of `files` (a file, or a `.hdr` with its `.img`, kept
    /// side by side by [`ImageSource::new`]), a copy otherwise.
    fn files_of(&self, indices: &[usize]) -> std::borrow::Cow<'_, [NamedFile]> {
        let first = indices.first().copied().unwrap_or(0);
        let side_by_side = indices.iter().enumerate().all(|(k, &i)| i == first + k);
        if side_by_side && first + indices.len() <= self.files.len() {
            std::borrow::Cow::Borrowed(&self.files[first..first + indices.len()])
        } else {
            std::borrow::Cow::Owned(indices.iter().map(|&i| self.files[i].clone()).collect())
        }
    }
}
