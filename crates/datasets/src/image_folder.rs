//! torchvision-style image folders: `root/<class>/**/<image>.{png,jpg,jpeg}`, one class per
//! sub-folder of `root`, classes indexed in sorted name order (like `ImageFolder`). Images are
//! decoded lazily, one per [`ImageFolder::get`]. Hidden sub-folders (`.name`) are skipped.

use std::fs;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use tch::Tensor;

use crate::loader::{Loader, LoaderConfig};
use crate::{DataError, Result};

/// File extensions taken as images (case-insensitive); other files are ignored.
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// The resize filter: bilinear (`Triangle`), as torchvision's default `Resize`.
pub const FILTER: FilterType = FilterType::Triangle;

/// How a decoded image becomes `height x width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Straight to `height x width`; the aspect ratio is not kept.
    Stretch,
    /// torchvision `Resize(shorter)` then `CenterCrop((height, width))`: the shorter side goes to
    /// `shorter` with the aspect ratio kept (the longer side truncated as torchvision does), then
    /// the centre is cut out. The standard evaluation transform (`Resize(256)`, `CenterCrop(224)`).
    ShorterThenCenterCrop(u32),
}

/// A lazily decoded image-classification folder.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, i64)>,
    height: u32,
    width: u32,
    resize: Resize,
    filter: FilterType,
}

/// The output size of torchvision `Resize(shorter)` on a `w x h` image.
pub fn shorter_side_size(w: u32, h: u32, shorter: u32) -> (u32, u32) {
    let scale =
        |long: u32, short: u32| (u64::from(shorter) * u64::from(long) / u64::from(short)) as u32;
    if w <= h {
        (shorter, scale(h, w))
    } else {
        (scale(w, h), shorter)
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        out.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

/// Image files under `dir`, recursively, in sorted path order.
fn images_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for path in sorted_entries(dir)? {
        if path.is_dir() {
            images_under(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Indexes `root` (no decoding yet); every item will be resized to `size = (height, width)`.
    ///
    /// Errors: `root` unreadable, no class sub-folder, a class with no image, a zero size.
    pub fn open(root: impl AsRef<Path>, size: (u32, u32)) -> Result<ImageFolder> {
        let root = root.as_ref();
        let (height, width) = size;
        if height == 0 || width == 0 {
            return Err(DataError::Config(format!(
                "image size must be positive, got {size:?}"
            )));
        }
        let dirs: Vec<PathBuf> = sorted_entries(root)?
            .into_iter()
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        if dirs.is_empty() {
            return Err(DataError::ImageFolder {
                path: root.to_path_buf(),
                reason: "no class sub-folders (expected root/<class>/<image>.png|jpg)".to_owned(),
            });
        }
        let mut classes = Vec::with_capacity(dirs.len());
        let mut samples = Vec::new();
        for (class, dir) in dirs.iter().enumerate() {
            let mut files = Vec::new();
            images_under(dir, &mut files)?;
            if files.is_empty() {
                return Err(DataError::ImageFolder {
                    path: dir.clone(),
                    reason: format!("class folder holds no image ({})", EXTENSIONS.join(", ")),
                });
            }
            classes.push(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            samples.extend(files.into_iter().map(|f| (f, class as i64)));
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            classes,
            samples,
            height,
            width,
            resize: Resize::Stretch,
            filter: FILTER,
        })
    }

    /// The same folder with another [`Resize`]. Errors: a shorter side below the crop's longer
    /// side.
    pub fn with_resize(mut self, resize: Resize) -> Result<ImageFolder> {
        if let Resize::ShorterThenCenterCrop(s) = resize {
            if s < self.height.max(self.width) {
                return Err(DataError::Config(format!(
                    "Resize({s}) then CenterCrop({}x{}): the shorter side must be at least the \
                     crop's longer side, or square images would not hold the crop",
                    self.height, self.width
                )));
            }
        }
        self.resize = resize;
        Ok(self)
    }

    /// The same folder resizing with `filter` (default [`FILTER`], bilinear; `CatmullRom` is
    /// PIL's bicubic, the official MAE evaluation's `interpolation=3`).
    pub fn with_filter(mut self, filter: FilterType) -> ImageFolder {
        self.filter = filter;
        self
    }

    /// How images are brought to the model's size.
    pub fn resize(&self) -> Resize {
        self.resize
    }

    /// The folder holding one sub-folder per class.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names; class `i` is `classes()[i]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `(height, width)` of every item.
    pub fn size(&self) -> (u32, u32) {
        (self.height, self.width)
    }

    /// Path and class of item `i`.
    pub fn sample(&self, i: usize) -> Option<(&Path, i64)> {
        self.samples.get(i).map(|(p, c)| (p.as_path(), *c))
    }

    /// Item `i`: decoded, converted to RGB, brought to `height x width` by [`Self::resize`]
    /// (default: stretched with [`FILTER`]), as a `[3,H,W]` f32 tensor in `[0,1]`, with its class
    /// index.
    pub fn get(&self, i: usize) -> Result<(Tensor, i64)> {
        let (path, class) = self.sample(i).ok_or_else(|| {
            DataError::Config(format!("index {i} out of range for {} images", self.len()))
        })?;
        let decode_err = |reason: String| DataError::Image {
            path: path.to_path_buf(),
            reason,
        };
        let img = image::ImageReader::open(path)
            .map_err(|e| DataError::io(path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(path, e))?
            .decode()
            .map_err(|e| decode_err(e.to_string()))?
            .to_rgb8();
        let img = self.fit(img).map_err(decode_err)?;
        let (h, w) = (i64::from(self.height), i64::from(self.width));
        let t = crate::unit_pixels(img.as_raw(), &[h, w, 3])
            .and_then(|t| t.f_permute([2, 0, 1]))
            .map_err(DataError::torch(format!(
                "{}: converting to a tensor",
                path.display()
            )))?;
        Ok((t, class))
    }

    /// `img` brought to `height x width` by [`Self::resize`].
    fn fit(&self, img: image::RgbImage) -> std::result::Result<image::RgbImage, String> {
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(format!("empty image ({w}x{h})"));
        }
        let (tw, th) = (self.width, self.height);
        match self.resize {
            Resize::Stretch if (w, h) == (tw, th) => Ok(img),
            Resize::Stretch => Ok(image::imageops::resize(&img, tw, th, self.filter)),
            Resize::ShorterThenCenterCrop(s) => {
                let (rw, rh) = shorter_side_size(w, h, s);
                let img = if (rw, rh) == (w, h) {
                    img
                } else {
                    image::imageops::resize(&img, rw, rh, self.filter)
                };
                // torchvision CenterCrop: top = round((h - th) / 2) (Python's round: half to
                // even), left likewise.
                let left = ((f64::from(rw) - f64::from(tw)) / 2.0).round_ties_even() as u32;
                let top = ((f64::from(rh) - f64::from(th)) / 2.0).round_ties_even() as u32;
                if rw < tw || rh < th {
                    return Err(format!(
                        "resized to {rw}x{rh}, smaller than the {tw}x{th} crop"
                    ));
                }
                Ok(image::imageops::crop_imm(&img, left, top, tw, th).to_image())
            }
        }
    }

    /// A [`Loader`] decoding this folder's images in its worker thread (and `cfg.workers`
    /// threads per batch).
    pub fn into_loader(self, cfg: LoaderConfig) -> Result<Loader> {
        Loader::from_fn(self.len(), move |i| self.get(i), cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::Batch;
    use image::{Rgb, RgbImage};
    use tch::Kind;

    fn solid(path: &Path, w: u32, h: u32, c: [u8; 3]) {
        RgbImage::from_pixel(w, h, Rgb(c)).save(path).unwrap();
    }

    /// `cat/` (2 png), `dog/` (1 jpg in a sub-folder), a stray text file and a hidden folder.
    fn folder() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for c in ["dog/sub", "cat", ".hidden"] {
            fs::create_dir_all(d.path().join(c)).unwrap();
        }
        solid(&d.path().join("cat/b.png"), 10, 6, [255, 0, 0]);
        solid(&d.path().join("cat/a.PNG"), 4, 4, [0, 0, 255]);
        solid(&d.path().join("dog/sub/x.jpg"), 16, 16, [0, 255, 0]);
        fs::write(d.path().join("cat/notes.txt"), "not an image").unwrap();
        fs::write(d.path().join("readme.md"), "top-level file").unwrap();
        d
    }

    #[test]
    fn indexes_sorted_classes_and_decodes_items() {
        let d = folder();
        let f = ImageFolder::open(d.path(), (8, 5)).unwrap();
        assert_eq!(f.classes(), ["cat", "dog"]);
        assert_eq!(f.len(), 3);
        let labels: Vec<i64> = (0..3).map(|i| f.sample(i).unwrap().1).collect();
        assert_eq!(labels, vec![0, 0, 1]);
        assert!(f.sample(0).unwrap().0.ends_with("cat/a.PNG"));
        let (x, y) = f.get(1).unwrap();
        assert_eq!((x.size(), x.kind(), y), (vec![3, 8, 5], Kind::Float, 0));
        // A solid red image stays red after resizing.
        let mean: Vec<f64> = (0..3)
            .map(|c| x.get(c).mean(Kind::Float).double_value(&[]))
            .collect();
        assert!((mean[0] - 1.0).abs() < 1e-6 && mean[1].abs() < 1e-6 && mean[2].abs() < 1e-6);
        let (g, y) = f.get(2).unwrap(); // jpeg: lossy, roughly green
        assert_eq!(y, 1);
        assert!(g.get(1).mean(Kind::Float).double_value(&[]) > 0.9);
        assert!(f.get(3).is_err());
    }

    #[test]
    fn corrupt_image_is_an_error_naming_the_file() {
        let d = folder();
        fs::write(d.path().join("dog/broken.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        let f = ImageFolder::open(d.path(), (4, 4)).unwrap();
        let err = f.get(2).unwrap_err();
        assert!(matches!(err, DataError::Image { .. }), "{err:?}");
        assert!(err.to_string().contains("broken.png"), "{err}");
    }

    #[test]
    fn empty_root_empty_class_and_missing_root_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let err = ImageFolder::open(d.path(), (4, 4)).unwrap_err().to_string();
        assert!(err.contains("no class sub-folders"), "{err}");
        fs::create_dir(d.path().join("empty")).unwrap();
        fs::write(d.path().join("empty/a.txt"), "x").unwrap();
        let err = ImageFolder::open(d.path(), (4, 4)).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("no image"), "{err}");
        assert!(ImageFolder::open(d.path().join("nope"), (4, 4)).is_err());
        assert!(ImageFolder::open(folder().path(), (0, 4)).is_err());
    }

    #[test]
    fn shorter_side_then_centre_crop_as_torchvision() {
        // torchvision Resize(256): 500x375 -> 341x256; 375x500 -> 256x341; square stays square.
        assert_eq!(shorter_side_size(500, 375, 256), (341, 256));
        assert_eq!(shorter_side_size(375, 500, 256), (256, 341));
        assert_eq!(shorter_side_size(300, 300, 256), (256, 256));
        // A 30x20 image: left half red, right half blue; Resize(10) -> 15x10, crop 10x10 at
        // left = round(2.5) = 2 (Python's round, half to even).
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("a")).unwrap();
        let img = RgbImage::from_fn(30, 20, |x, _| {
            if x < 15 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        img.save(d.path().join("a/x.png")).unwrap();
        let f = ImageFolder::open(d.path(), (10, 10))
            .unwrap()
            .with_resize(Resize::ShorterThenCenterCrop(10))
            .unwrap();
        let (x, _) = f.get(0).unwrap();
        assert_eq!(x.size(), vec![3, 10, 10]);
        // Aspect kept: the crop holds both halves, red on the left, blue on the right.
        let red_left = x.get(0).narrow(1, 0, 3).mean(Kind::Float).double_value(&[]);
        let blue_right = x.get(2).narrow(1, 7, 3).mean(Kind::Float).double_value(&[]);
        assert!(
            red_left > 0.95 && blue_right > 0.95,
            "{red_left} {blue_right}"
        );
        // Stretching the same image squeezes it instead; the halves stay halves.
        let s = ImageFolder::open(d.path(), (10, 10)).unwrap();
        assert_eq!(s.resize(), Resize::Stretch);
        let (y, _) = s.get(0).unwrap();
        assert!(y.get(0).narrow(1, 0, 4).mean(Kind::Float).double_value(&[]) > 0.95);
        // A shorter side below the crop is refused up front.
        let err = ImageFolder::open(d.path(), (10, 12))
            .unwrap()
            .with_resize(Resize::ShorterThenCenterCrop(11))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Resize(11)") && err.contains("10x12"), "{err}");
    }

    #[test]
    fn loader_over_a_folder() {
        let d = folder();
        let f = ImageFolder::open(d.path(), (6, 6)).unwrap();
        let cfg = LoaderConfig {
            batch_size: 2,
            seed: 5,
            ..LoaderConfig::default()
        };
        let l = f.into_loader(cfg).unwrap();
        let batches: Vec<Batch> = l.epoch(0).map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].images.size(), vec![2, 3, 6, 6]);
        let mut all: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2]);
    }
}
