//! Packed 8-bit RGB images (HWC, 3 bytes per pixel), owned and borrowed. Buffers are reused by the
//! workers: `RgbImage::reset` keeps the allocation.

/// An owned RGB image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn new(width: usize, height: usize) -> Self {
        RgbImage {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), width * height * 3, "RGB buffer size");
        RgbImage {
            width,
            height,
            data,
        }
    }

    /// Resizes the buffer to `width × height` without freeing it; contents are unspecified.
    pub fn reset(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.resize(width * height * 3, 0);
    }

    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.width * 3,
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

/// A borrowed rectangle of an RGB image (rows `stride` bytes apart).
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

impl<'a> ImageView<'a> {
    /// The sub-rectangle at (x, y) of size w × h. Panics if it does not fit.
    pub fn crop(&self, x: usize, y: usize, w: usize, h: usize) -> ImageView<'a> {
        assert!(
            x + w <= self.width && y + h <= self.height,
            "crop outside the image"
        );
        let start = y * self.stride + x * 3;
        let end = if h == 0 {
            start
        } else {
            start + (h - 1) * self.stride + w * 3
        };
        ImageView {
            data: &self.data[start..end],
            width: w,
            height: h,
            stride: self.stride,
        }
    }

    pub fn row(&self, y: usize) -> &'a [u8] {
        &self.data[y * self.stride..y * self.stride + self.width * 3]
    }
}
