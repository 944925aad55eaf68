//! ContrastiveSeg's cross-image pixel contrast (METHODS.md §5.6; tfzhou/ContrastiveSeg
//! `lib/loss/loss_contrast.py` `PixelContrastLoss`): anchors sampled per image and class, then a
//! supervised contrastive loss over all anchors of the batch — positives are the same class in
//! any image, negatives every other class.
//!
//! The reference's sampler is called as `_hard_anchor_sampling(feats, labels, predict)` while its
//! parameters read `(X, y_hat, y)`, so inside it `y_hat` is the ground truth and `y` the
//! prediction (ContrastiveSeg#19). Here the two are named for what they are: classes come from
//! the labels, "hard" anchors are labelled the class but predicted otherwise, "easy" ones are
//! predicted right — which is what the reference computes once the swapped names are read
//! through.

use burn::tensor::{Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::Rng;

use super::pixel_ce::IGNORE;

/// The sampled anchors: `n_view` pixels of each (image, class) anchor, as indices into the
/// batch's `[P, D]` embeddings (P = images · h · w).
#[derive(Debug, Clone, PartialEq)]
pub struct Anchors {
    /// `[A][n_view]`: per anchor, its hard pixels first, then its easy ones.
    pub pixels: Vec<Vec<usize>>,
    /// The class of each anchor.
    pub classes: Vec<i64>,
    pub n_view: usize,
}

/// How many hard and easy pixels an anchor keeps, given how many it has (the reference's four
/// cases; the labelled pixels are more than `max_views` ≥ `n_view`, so one kind has at least
/// half).
pub fn hard_easy_split(hard: usize, easy: usize, n_view: usize) -> (usize, usize) {
    let half = n_view as f64 / 2.0;
    if hard as f64 >= half && easy as f64 >= half {
        let h = n_view / 2;
        (h, n_view - h)
    } else if hard as f64 >= half {
        (n_view - easy, easy)
    } else {
        (hard, n_view - hard)
    }
}

/// `_hard_anchor_sampling`: per image, the classes with more than `max_views` labelled pixels;
/// `n_view = min(max_samples / total classes, max_views)` pixels each, split by
/// [`hard_easy_split`] and drawn at random. `labels`, `predictions`: `[images, hw]`. None when no
/// image has such a class.
pub fn sample_anchors(
    labels: &[i64],
    predictions: &[i64],
    images: usize,
    max_samples: usize,
    max_views: usize,
    rng: &mut impl Rng,
) -> Option<Anchors> {
    let hw = labels.len() / images.max(1);
    let mut per_image: Vec<Vec<i64>> = Vec::with_capacity(images);
    for i in 0..images {
        let l = &labels[i * hw..(i + 1) * hw];
        let mut classes: Vec<i64> = l.iter().copied().filter(|&c| c != IGNORE).collect();
        classes.sort_unstable();
        classes.dedup();
        classes.retain(|&c| l.iter().filter(|&&v| v == c).count() > max_views);
        per_image.push(classes);
    }
    let total: usize = per_image.iter().map(Vec::len).sum();
    if total == 0 {
        return None;
    }
    let n_view = (max_samples / total).min(max_views);
    if n_view == 0 {
        return None;
    }
    let mut anchors = Anchors {
        pixels: Vec::with_capacity(total),
        classes: Vec::with_capacity(total),
        n_view,
    };
    for (i, classes) in per_image.iter().enumerate() {
        let base = i * hw;
        for &c in classes {
            let of_class = (0..hw).filter(|&p| labels[base + p] == c);
            let (mut hard, mut easy): (Vec<usize>, Vec<usize>) = of_class
                .map(|p| base + p)
                .partition(|&p| predictions[p] != c);
            let (keep_hard, keep_easy) = hard_easy_split(hard.len(), easy.len(), n_view);
            hard.shuffle(rng);
            easy.shuffle(rng);
            let mut pixels = hard[..keep_hard].to_vec();
            pixels.extend_from_slice(&easy[..keep_easy]);
            anchors.pixels.push(pixels);
            anchors.classes.push(c);
        }
    }
    Some(anchors)
}

/// `_contrastive` on the anchors' embeddings (`embeddings` `[P, D]`, L2-normalised): every view of
/// every anchor against all the others, `−(τ/τ_base) · mean over anchors of the mean log-prob of
/// its positives`, where a positive's probability is taken against itself plus all negatives
/// (not the other positives). Views whose class has no other view are left out (the reference
/// divides 0 by 0 there).
pub fn pixel_contrast_loss(
    embeddings: Tensor<2>,
    anchors: &Anchors,
    temperature: f64,
    base_temperature: f64,
) -> Tensor<1> {
    let device = embeddings.device();
    let a = anchors.classes.len();
    let v = anchors.n_view;
    let n = a * v;
    // The reference's `cat(unbind(X_, dim=1))`: view-major rows.
    let rows: Vec<i64> = (0..v)
        .flat_map(|view| (0..a).map(move |anchor| (anchor, view)))
        .map(|(anchor, view)| anchors.pixels[anchor][view] as i64)
        .collect();
    let class_of = |r: usize| anchors.classes[r % a];
    let mut positive = vec![0f32; n * n];
    let mut negative = vec![0f32; n * n];
    let mut has_positive = vec![0f32; n];
    for r in 0..n {
        for c in 0..n {
            if class_of(r) == class_of(c) {
                if r != c {
                    positive[r * n + c] = 1.0;
                    has_positive[r] = 1.0;
                }
            } else {
                negative[r * n + c] = 1.0;
            }
        }
    }
    let f = embeddings.select(
        0,
        Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device),
    );
    let logits = f.clone().matmul(f.transpose()).div_scalar(temperature);
    let logits = logits.clone() - logits.max_dim(1).detach();
    let mask = |m: Vec<f32>| Tensor::<2>::from_data(TensorData::new(m, [n, n]), &device);
    let (positive, negative) = (mask(positive), mask(negative));
    let exp = logits.clone().exp();
    let negatives = (exp.clone() * negative).sum_dim(1);
    let log_prob = logits - (exp + negatives).log();
    let count = positive.clone().sum_dim(1).clamp_min(1.0);
    let mean_pos = (positive * log_prob).sum_dim(1) / count;
    let keep = Tensor::<2>::from_data(TensorData::new(has_positive, [n, 1]), &device);
    let kept = keep.clone().sum().clamp_min(1.0);
    (mean_pos * keep)
        .sum()
        .neg()
        .mul_scalar(temperature / base_temperature)
        / kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// By hand: the reference's four cases.
    #[test]
    fn hard_easy_split_follows_the_reference() {
        assert_eq!(hard_easy_split(80, 70, 100), (50, 50));
        assert_eq!(hard_easy_split(30, 120, 100), (30, 70));
        assert_eq!(hard_easy_split(120, 30, 100), (70, 30));
        assert_eq!(hard_easy_split(50, 51, 101), (50, 51));
    }

    /// Two images of 12 pixels, max_views 4: image 0 has class 1 (6 pixels, 2 mispredicted) and
    /// class 2 (3 pixels: too few), image 1 class 2 (5 pixels, all right) and ignore.
    #[test]
    fn anchors_are_drawn_per_image_and_class_hard_first() {
        #[rustfmt::skip]
        let labels = vec![
            1, 1, 1, 1, 1, 1, 2, 2, 2, 0, 0, 0,
            2, 2, 2, 2, 2, 255, 255, 255, 255, 0, 0, 0,
        ];
        #[rustfmt::skip]
        let predictions = vec![
            1, 0, 1, 2, 1, 1, 2, 2, 2, 0, 0, 0,
            2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let a = sample_anchors(&labels, &predictions, 2, 9, 4, &mut rng).unwrap();
        // Classes with > 4 pixels: (image 0, class 1), (image 1, class 2) → n_view = min(9/2, 4).
        assert_eq!(a.classes, vec![1, 2]);
        assert_eq!(a.n_view, 4);
        // Image 0, class 1: hard pixels 1 and 3 (both kept: 2 ≥ 4/2), then 2 of the 4 easy.
        assert_eq!(
            &a.pixels[0][..2]
                .iter()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            &[1, 3].into_iter().collect()
        );
        assert!(a.pixels[0][2..].iter().all(|p| [0, 2, 4, 5].contains(p)));
        // Image 1, class 2: no hard pixel, 4 of the 5 easy ones (indices 12..17).
        assert!(a.pixels[1].iter().all(|p| (12..17).contains(p)));
        let mut distinct = a.pixels[1].clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
    }
}
