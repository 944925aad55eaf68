//! Partial JPEG decoding through the raw TurboJPEG 3 API (`turbojpeg-sys`; the safe `turbojpeg`
//! wrapper has no cropping region): decode only the rows and columns a sample's views read.
//!
//! libjpeg-turbo skips the rows above the region without inverse DCT, upsampling or colour
//! conversion (their entropy-coded data must still be parsed), does those steps only for the
//! region's columns, and stops reading the file after the region's last row — the saving that
//! matters, as Huffman decoding is most of a decode. The region's left edge must be a multiple of
//! the scaled iMCU width; its pixels equal the full decode's (`loader/tests/partial_decode.rs`)
//! provided the region has a margin of context for fancy chroma upsampling (`MARGIN`).

use std::ffi::CStr;

use turbojpeg_sys as raw;

/// Pixels of context kept around the needed area (scaled pixels): h2v2 fancy upsampling reads
/// the neighbouring chroma row and column, so a region edge flush with the needed area can differ
/// there from the full decode (1 was enough on every test image; 2 for the margin of safety).
pub const MARGIN: usize = 2;

/// iMCU width in pixels per TurboJPEG subsampling (`TJSAMP_444` … `TJSAMP_441`), as
/// `tjMCUWidth` in turbojpeg.h (a `static` there, so not linkable).
const MCU_WIDTH: [usize; 7] = [8, 16, 16, 8, 8, 32, 8];

/// A rectangle in pixels of the (scaled) image: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

/// TurboJPEG's size of `d` pixels at scale `num/denom`: ⌈d·num/denom⌉ (`TJSCALED`).
pub fn scaled_dim(d: usize, (num, denom): (usize, usize)) -> usize {
    (d * num).div_ceil(denom)
}

/// [`scaled_dim`] of both sides.
pub fn scaled_size(full: (usize, usize), scale: (usize, usize)) -> (usize, usize) {
    (scaled_dim(full.0, scale), scaled_dim(full.1, scale))
}

/// One TurboJPEG decompression handle.
pub struct RegionDecompressor {
    handle: raw::tjhandle,
}

// SAFETY: a TurboJPEG handle holds no thread-local state; it may move between threads as long as
// one thread uses it at a time, which `&mut self` on every method guarantees.
unsafe impl Send for RegionDecompressor {}

/// What `RegionDecompressor::decode` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Size of the whole image at the decode scale.
    pub scaled: (usize, usize),
    /// The decoded rectangle of it (the whole image when no region was asked for or it covered
    /// everything).
    pub rect: Rect,
}

impl RegionDecompressor {
    pub fn new() -> RegionDecompressor {
        // SAFETY: plain constructor; a null handle (out of memory) is checked below.
        let handle = unsafe { raw::tj3Init(raw::TJINIT_TJINIT_DECOMPRESS as i32) };
        assert!(!handle.is_null(), "libjpeg-turbo handle");
        RegionDecompressor { handle }
    }

    fn error(&self) -> String {
        // SAFETY: the handle is valid; the string is owned by it and copied at once.
        unsafe { CStr::from_ptr(raw::tj3GetErrorStr(self.handle)) }
            .to_string_lossy()
            .trim()
            .to_string()
    }

    fn check(&self, rc: i32) -> Result<(), String> {
        if rc == 0 {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// Decodes `bytes` to packed RGB at `scale` = (num, denom), only `want` (a rectangle of the
    /// scaled image, grown by `MARGIN` and aligned to the iMCU grid here) when given. `out` is
    /// resized to the decoded rectangle. Errors carry libjpeg-turbo's message (warnings included:
    /// a truncated or corrupt stream inside what was read is an error).
    pub fn decode(
        &mut self,
        bytes: &[u8],
        scale: (usize, usize),
        want: Option<Rect>,
        out: &mut Vec<u8>,
    ) -> Result<Decoded, String> {
        let r = self.decode_once(bytes, scale, want, out);
        if r.is_err() {
            // A failed header read leaves libjpeg's state machine inside the bad stream, and
            // the next file would be read as its continuation ("Bogus DQT index" on a good
            // photo): start the next one from a fresh handle.
            *self = RegionDecompressor::new();
        }
        r
    }

    fn decode_once(
        &mut self,
        bytes: &[u8],
        scale: (usize, usize),
        want: Option<Rect>,
        out: &mut Vec<u8>,
    ) -> Result<Decoded, String> {
        let sf = raw::tjscalingfactor {
            num: scale.0 as i32,
            denom: scale.1 as i32,
        };
        // SAFETY: valid handle; `bytes` outlives the call; every out-pointer below points into
        // a buffer resized to exactly the rectangle TurboJPEG writes (pitch = width · 3).
        unsafe {
            self.check(raw::tj3DecompressHeader(
                self.handle,
                bytes.as_ptr(),
                bytes.len() as _,
            ))?;
            self.check(raw::tj3SetScalingFactor(self.handle, sf))?;
            let get = |p: raw::TJPARAM| raw::tj3Get(self.handle, p as i32);
            let (w, h) = (
                get(raw::TJPARAM_TJPARAM_JPEGWIDTH),
                get(raw::TJPARAM_TJPARAM_JPEGHEIGHT),
            );
            let scaled = scaled_size((w as usize, h as usize), scale);
            let whole = Rect {
                x: 0,
                y: 0,
                w: scaled.0,
                h: scaled.1,
            };
            let subsamp = get(raw::TJPARAM_TJPARAM_SUBSAMP);
            let rect = match want {
                // Partial decoding needs a known subsampling (for the iMCU width).
                Some(r) if (0..MCU_WIDTH.len() as i32).contains(&subsamp) => {
                    let imcu = scaled_dim(MCU_WIDTH[subsamp as usize], scale);
                    grow_and_align(r, scaled, imcu)
                }
                _ => whole,
            };
            let region = if rect == whole {
                raw::tjregion {
                    x: 0,
                    y: 0,
                    w: 0,
                    h: 0,
                }
            } else {
                raw::tjregion {
                    x: rect.x as i32,
                    y: rect.y as i32,
                    w: rect.w as i32,
                    h: rect.h as i32,
                }
            };
            // The region persists on the handle: set it (or clear it) on every call.
            self.check(raw::tj3SetCroppingRegion(self.handle, region))?;
            out.resize(rect.w * rect.h * 3, 0);
            self.check(raw::tj3Decompress8(
                self.handle,
                bytes.as_ptr(),
                bytes.len() as _,
                out.as_mut_ptr(),
                (rect.w * 3) as i32,
                raw::TJPF_TJPF_RGB as _,
            ))?;
            Ok(Decoded { scaled, rect })
        }
    }
}

impl Default for RegionDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RegionDecompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from tj3Init and is destroyed once.
        unsafe { raw::tj3Destroy(self.handle) };
    }
}

/// `want` grown by `MARGIN` on every side, clipped to the image, its left edge moved down to a
/// multiple of `imcu` (TurboJPEG's requirement).
fn grow_and_align(want: Rect, scaled: (usize, usize), imcu: usize) -> Rect {
    let x1 = (want.x + want.w + MARGIN).min(scaled.0);
    let y1 = (want.y + want.h + MARGIN).min(scaled.1);
    // At least one pixel, even for a degenerate `want` at the image's far edge.
    let x0 = (want.x.saturating_sub(MARGIN) / imcu.max(1) * imcu.max(1)).min(x1 - 1);
    let y0 = want.y.saturating_sub(MARGIN).min(y1 - 1);
    Rect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_grow_by_the_margin_and_align_left() {
        let r = Rect {
            x: 37,
            y: 10,
            w: 100,
            h: 50,
        };
        assert_eq!(
            grow_and_align(r, (500, 375), 16),
            Rect {
                x: 32,
                y: 8,
                w: 139 - 32,
                h: 62 - 8
            }
        );
        // Clipped at the image's edges.
        let edge = Rect {
            x: 0,
            y: 0,
            w: 500,
            h: 375,
        };
        assert_eq!(grow_and_align(edge, (500, 375), 16), edge);
    }
}
