//! Turns file bytes into RGB pixels. JPEG goes through libjpeg-turbo (the `turbojpeg` crate,
//! vendored build), optionally with DCT-domain downscaling when the views need fewer pixels and
//! decoding only the rectangle the views read (`decode_part`, `jpeg_region`: the file is read no
//! further than that rectangle's last row, so damage below it goes unnoticed, as it does not
//! reach the sample; a file without its end marker is decoded whole and refused as truncated);
//! CMYK/YCCK JPEGs are decoded to CMYK and converted with Pillow's formula (Adobe files are stored
//! inverted); PNG, WebP, GIF, BMP, TIFF and JPEGs libjpeg-turbo rejects go through the `image` crate.
//! The format is sniffed from the bytes, not the file name. Images over the pixel cap are refused
//! from their header, before any pixel is decoded.

use std::fmt;

use turbojpeg::{Colorspace, Decompressor, Image, PixelFormat, ScalingFactor};

use crate::image::RgbImage;
pub use crate::jpeg_region::scaled_size;
use crate::jpeg_region::{Rect, RegionDecompressor};
use crate::ops::crop::CropBox;

/// Why an image was not used. The loader counts skips by this kind and names the file in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipKind {
    Unreadable,
    Empty,
    NotAnImage,
    Truncated,
    Corrupt,
    TooLarge,
}

impl fmt::Display for SkipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipKind::Unreadable => "unreadable",
            SkipKind::Empty => "empty file",
            SkipKind::NotAnImage => "not an image",
            SkipKind::Truncated => "truncated",
            SkipKind::Corrupt => "corrupt",
            SkipKind::TooLarge => "too many pixels",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: SkipKind,
    pub detail: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

fn err(kind: SkipKind, detail: impl Into<String>) -> DecodeError {
    DecodeError {
        kind,
        detail: detail.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Other(image::ImageFormat),
}

/// What the header says, before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: usize,
    pub height: usize,
    pub format: Format,
    /// libjpeg-turbo can decode this JPEG directly to RGB, so DCT scaling is available.
    pub dct_scalable: bool,
}

/// DCT-domain downscaling factors we use (the ones with fast IDCT paths).
pub const DCT_SCALES: [(usize, usize); 4] = [(1, 8), (1, 4), (1, 2), (1, 1)];

/// One decoder per worker: owns the libjpeg-turbo handle.
pub struct Decoder {
    tj: Decompressor,
    /// RGB decodes (whole or partial) go through the raw API: the safe wrapper cannot crop.
    partial: RegionDecompressor,
    max_pixels: u64,
    cmyk: Vec<u8>,
}

impl Decoder {
    pub fn new(max_pixels: u64) -> Decoder {
        Decoder {
            tj: Decompressor::new().expect("libjpeg-turbo handle"),
            partial: RegionDecompressor::new(),
            max_pixels,
            cmyk: Vec::new(),
        }
    }

    /// Reads dimensions and format without decoding pixels; refuses decompression bombs.
    pub fn probe(&mut self, bytes: &[u8]) -> Result<ImageInfo, DecodeError> {
        if bytes.is_empty() {
            return Err(err(SkipKind::Empty, "0 bytes"));
        }
        let info = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            // TurboJPEG reads a header that ends before its SOS as a tables-only stream and
            // succeeds without setting the size: it would report the previous image's.
            if !reaches_scan(bytes) {
                return Err(err(
                    SkipKind::Truncated,
                    "JPEG header ends before its first scan (SOS)",
                ));
            }
            let header = self.tj.read_header(bytes);
            if header.is_err() {
                // libjpeg's state machine stays inside the bad header and would read the next
                // file as its continuation: start over with a fresh handle.
                self.reset_tj();
            }
            match header {
                Ok(h) => ImageInfo {
                    width: h.width,
                    height: h.height,
                    format: Format::Jpeg,
                    dct_scalable: !h.is_lossless
                        && !matches!(h.colorspace, Colorspace::CMYK | Colorspace::YCCK),
                },
                Err(e) => return Err(err(SkipKind::Corrupt, format!("JPEG header: {e}"))),
            }
        } else {
            let fmt = image::guess_format(bytes)
                .map_err(|_| err(SkipKind::NotAnImage, "unknown file signature"))?;
            let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), fmt);
            let (w, h) = reader
                .into_dimensions()
                .map_err(|e| err(SkipKind::Corrupt, format!("{fmt:?} header: {e}")))?;
            ImageInfo {
                width: w as usize,
                height: h as usize,
                format: Format::Other(fmt),
                dct_scalable: false,
            }
        };
        if info.width == 0 || info.height == 0 {
            return Err(err(SkipKind::Corrupt, "zero-sized image"));
        }
        let pixels = info.width as u64 * info.height as u64;
        if pixels > self.max_pixels {
            return Err(err(
                SkipKind::TooLarge,
                format!(
                    "{}×{} = {pixels} pixels exceeds the cap of {}",
                    info.width, info.height, self.max_pixels
                ),
            ));
        }
        Ok(info)
    }

    /// Decodes into `out` (its buffer is reused). `scale` = (num, denom) applies to DCT-scalable
    /// JPEGs only; the output size is then ⌈w·num/denom⌉ × ⌈h·num/denom⌉.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        info: &ImageInfo,
        scale: (usize, usize),
        out: &mut RgbImage,
    ) -> Result<(), DecodeError> {
        self.decode_part(bytes, info, scale, None, out).map(|_| ())
    }

    /// [`Decoder::decode`] of only the pixels in `want` ((x, y, w, h) in pixels at the decode
    /// scale, see `augment::source_rect`) and some context around them, where the format allows
    /// (DCT-scalable JPEGs that end with their EOI marker: a truncated file is decoded whole, so
    /// it is refused whatever part a view needs). Returns where the decoded rectangle sits.
    pub fn decode_part(
        &mut self,
        bytes: &[u8],
        info: &ImageInfo,
        scale: (usize, usize),
        want: Option<(usize, usize, usize, usize)>,
        out: &mut RgbImage,
    ) -> Result<Placement, DecodeError> {
        let full = (info.width, info.height);
        if info.format == Format::Jpeg {
            if info.dct_scalable {
                let want = want
                    .filter(|_| bytes.ends_with(&[0xFF, 0xD9]))
                    .map(|(x, y, w, h)| Rect { x, y, w, h });
                match self.decode_jpeg_rgb(bytes, scale, want, out) {
                    Ok((scaled, origin)) => {
                        return Ok(Placement {
                            full,
                            scaled,
                            origin,
                        })
                    }
                    Err(e) if e.kind == SkipKind::Truncated => return Err(e),
                    // libjpeg-turbo refused it: give the pure-Rust decoder a chance (below).
                    Err(_) => {}
                }
            } else if let Ok(()) = self.decode_jpeg_cmyk(bytes, out) {
                return Ok(Placement::whole(full, out));
            }
        }
        decode_with_image_crate(bytes, info, self.max_pixels, out)?;
        Ok(Placement::whole(full, out))
    }

    /// Probes and decodes `bytes` at full resolution into `out`; returns what the header said.
    pub fn decode_full(
        &mut self,
        bytes: &[u8],
        out: &mut RgbImage,
    ) -> Result<ImageInfo, DecodeError> {
        let info = self.probe(bytes)?;
        self.decode(bytes, &info, (1, 1), out)?;
        Ok(info)
    }

    /// Returns the image's size at this scale and the decoded rectangle's top-left corner.
    #[allow(clippy::type_complexity)]
    fn decode_jpeg_rgb(
        &mut self,
        bytes: &[u8],
        scale: (usize, usize),
        want: Option<Rect>,
        out: &mut RgbImage,
    ) -> Result<((usize, usize), (usize, usize)), DecodeError> {
        match self.partial.decode(bytes, scale, want, &mut out.data) {
            Ok(d) => {
                out.width = d.rect.w;
                out.height = d.rect.h;
                Ok((d.scaled, (d.rect.x, d.rect.y)))
            }
            // Pillow refuses truncated files too ("image file is truncated").
            Err(e) if e.contains("Premature end of JPEG file") => {
                Err(err(SkipKind::Truncated, "premature end of JPEG data"))
            }
            Err(e) => Err(err(SkipKind::Corrupt, e)),
        }
    }

    fn reset_tj(&mut self) {
        self.tj = Decompressor::new().expect("libjpeg-turbo handle");
    }

    /// CMYK and YCCK JPEGs: libjpeg-turbo gives CMYK; convert as Pillow does.
    fn decode_jpeg_cmyk(&mut self, bytes: &[u8], out: &mut RgbImage) -> Result<(), DecodeError> {
        let r = self.decode_jpeg_cmyk_once(bytes, out);
        if r.is_err() {
            self.reset_tj();
        }
        r
    }

    fn decode_jpeg_cmyk_once(
        &mut self,
        bytes: &[u8],
        out: &mut RgbImage,
    ) -> Result<(), DecodeError> {
        self.tj
            .set_scaling_factor(ScalingFactor::ONE)
            .map_err(|e| err(SkipKind::Corrupt, e.to_string()))?;
        let h = self
            .tj
            .read_header(bytes)
            .map_err(|e| err(SkipKind::Corrupt, e.to_string()))?;
        self.cmyk.resize(h.width * h.height * 4, 0);
        self.tj
            .decompress(
                bytes,
                Image {
                    pixels: &mut self.cmyk[..],
                    width: h.width,
                    pitch: h.width * 4,
                    height: h.height,
                    format: PixelFormat::CMYK,
                },
            )
            .map_err(|e| err(SkipKind::Corrupt, e.to_string()))?;
        out.reset(h.width, h.height);
        cmyk_to_rgb(&self.cmyk, has_adobe_marker(bytes), &mut out.data);
        Ok(())
    }
}

/// Whether the JPEG's marker segments reach a complete SOS header. Walks the segments from SOI;
/// where the walk meets something other than a marker (stray bytes libjpeg skips with a warning)
/// it leaves the verdict to libjpeg.
fn reaches_scan(bytes: &[u8]) -> bool {
    let mut i = 2;
    loop {
        if i + 2 > bytes.len() {
            return false;
        }
        if bytes[i] != 0xFF {
            return true;
        }
        match bytes[i + 1] {
            0xFF => i += 1,               // fill byte
            0xD9 => return false,         // EOI before any scan
            0x01 | 0xD0..=0xD8 => i += 2, // standalone markers
            marker => {
                if i + 4 > bytes.len() {
                    return false;
                }
                let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
                if marker == 0xDA {
                    return i + 2 + len <= bytes.len();
                }
                i += 2 + len;
            }
        }
    }
}

/// Adobe's APP14 segment marks CMYK JPEGs whose samples are stored inverted (Photoshop's habit).
fn has_adobe_marker(bytes: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let marker = bytes[i + 1];
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan: no more header segments
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xEE && bytes.get(i + 4..i + 9) == Some(b"Adobe") {
            return true;
        }
        i += 2 + len;
    }
    false
}

/// Pillow's CMYK → RGB: `R = (255 − K) − round(C·(255 − K)/255)`, after undoing Adobe inversion.
pub fn cmyk_to_rgb(cmyk: &[u8], inverted: bool, rgb: &mut [u8]) {
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    for (p, o) in cmyk.chunks_exact(4).zip(rgb.chunks_exact_mut(3)) {
        let v = |i: usize| {
            if inverted {
                255 - p[i] as i32
            } else {
                p[i] as i32
            }
        };
        let nk = 255 - v(3);
        for (c, out) in o.iter_mut().enumerate() {
            *out = (nk - muldiv255(v(c), nk)).clamp(0, 255) as u8;
        }
    }
}

fn decode_with_image_crate(
    bytes: &[u8],
    info: &ImageInfo,
    max_pixels: u64,
    out: &mut RgbImage,
) -> Result<(), DecodeError> {
    let fmt = match info.format {
        Format::Other(f) => f,
        Format::Jpeg => image::ImageFormat::Jpeg,
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), fmt);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => err(SkipKind::TooLarge, e.to_string()),
        _ => err(SkipKind::Corrupt, format!("{fmt:?}: {e}")),
    })?;
    // Transparent pixels composite over black, as Pillow's convert("RGB") drops alpha.
    let rgb = img.into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    out.width = w;
    out.height = h;
    out.data = rgb.into_raw();
    Ok(())
}

/// A region a view reads: its crop size in full-resolution pixels and the size it is resized to.
#[derive(Debug, Clone, Copy)]
pub struct RegionNeed {
    /// The crop, in full-resolution pixels.
    pub crop: CropBox,
    /// The size it is resized to.
    pub out: (usize, usize),
}

/// Where decoded pixels sit: the image's full-resolution size, its size at the decode's DCT scale,
/// and the top-left corner, in scaled pixels, of the rectangle that was decoded (the decoded
/// buffer's own size is that rectangle's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub full: (usize, usize),
    pub scaled: (usize, usize),
    pub origin: (usize, usize),
}

impl Placement {
    /// `src` is the whole image (maybe DCT-scaled) of an image `full` in size.
    pub fn whole(full: (usize, usize), src: &RgbImage) -> Placement {
        Placement {
            full,
            scaled: (src.width, src.height),
            origin: (0, 0),
        }
    }
}

/// The smallest DCT scale (num, denom) at which every needed region keeps at least its output
/// resolution: we only ever drop pixels that the antialiased resize would have averaged away.
pub fn pick_dct_scale(needs: &[RegionNeed]) -> (usize, usize) {
    for &(num, denom) in &DCT_SCALES {
        let ok = needs.iter().all(|n| {
            let ((cw, ch), (ow, oh)) = ((n.crop.w, n.crop.h), n.out);
            cw * num >= ow * denom && ch * num >= oh * denom
        });
        if ok {
            return (num, denom);
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_scale_never_drops_below_output_resolution() {
        let n = |cw, ch| RegionNeed {
            crop: CropBox {
                x: 0,
                y: 0,
                w: cw,
                h: ch,
            },
            out: (224, 224),
        };
        assert_eq!(pick_dct_scale(&[n(2000, 1800)]), (1, 8));
        assert_eq!(pick_dct_scale(&[n(2000, 1600)]), (1, 4));
        assert_eq!(pick_dct_scale(&[n(500, 400)]), (1, 1));
        assert_eq!(pick_dct_scale(&[n(900, 900)]), (1, 4));
        assert_eq!(pick_dct_scale(&[n(1000, 1000), n(460, 460)]), (1, 2));
    }

    #[test]
    fn cmyk_conversion_matches_pillow() {
        // Pillow: CMYK (0, 0, 0, 0) is white, (255, 0, 0, 0) is cyan, K = 255 is black.
        let mut rgb = [0u8; 9];
        cmyk_to_rgb(
            &[0, 0, 0, 0, 255, 0, 0, 0, 10, 20, 30, 255],
            false,
            &mut rgb,
        );
        assert_eq!(rgb, [255, 255, 255, 0, 255, 255, 0, 0, 0]);
        cmyk_to_rgb(
            &[255, 255, 255, 255, 0, 255, 255, 255, 0, 0, 0, 0],
            true,
            &mut rgb,
        );
        assert_eq!(rgb, [255, 255, 255, 0, 255, 255, 0, 0, 0]);
    }
}
