//! The CP² losses stay finite for every mask the loader can produce: 10⁴ pasted windows drawn by
//! the loader's own `draw_window`, sampled at the OS16 cell centres as the loader samples them, fed
//! (100 per batch) with random embeddings through the trainer's instance and dense losses.

use burn::tensor::{Device, Distribution, Tensor, TensorData};
use config::Cp2Config;
use loader::views::cp2::draw_window;
use rand::SeedableRng;
use trainer::loss::cp2::{dense_loss, instance_loss};
use trainer::loss::l2_normalize;

#[test]
fn cp2_losses_are_finite_for_every_drawn_window() {
    let cfg = Cp2Config::default();
    let (size, stride) = (cfg.view.size, cfg.output_stride);
    let g = size / stride;
    let device = Device::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let (batch, d) = (100, 16);
    let queue = l2_normalize(
        Tensor::<2>::random([64, d], Distribution::Normal(0.0, 1.0), &device),
        1,
    );
    let mut min_cells = usize::MAX;
    for _ in 0..100 {
        let mut masks = [vec![0f32; batch * g * g], vec![0f32; batch * g * g]];
        for m in masks.iter_mut() {
            for i in 0..batch {
                let w = draw_window(&mut rng, size, cfg.paste_area, cfg.paste_ratio);
                let mut cells = 0;
                for gy in 0..g {
                    for gx in 0..g {
                        let (cy, cx) = (gy * stride + stride / 2, gx * stride + stride / 2);
                        let inside = cy >= w.y && cy < w.y + w.h && cx >= w.x && cx < w.x + w.w;
                        m[i * g * g + gy * g + gx] = inside as u8 as f32;
                        cells += inside as usize;
                    }
                }
                min_cells = min_cells.min(cells);
            }
        }
        let [mq, mk] =
            masks.map(|m| Tensor::<2>::from_data(TensorData::new(m, [batch, g * g]), &device));
        let emb = || {
            l2_normalize(
                Tensor::<3>::random([batch, d, g * g], Distribution::Normal(0.0, 1.0), &device),
                1,
            )
        };
        let (q, k) = (emb(), emb());
        let (ins, _) = instance_loss(
            q.clone(),
            k.clone(),
            mq.clone(),
            mk.clone(),
            queue.clone(),
            0.2,
        );
        let dense = dense_loss(q, k, mq, mk);
        for v in [ins.into_scalar::<f32>(), dense.into_scalar::<f32>()] {
            assert!(v.is_finite(), "loss {v}");
        }
    }
    assert!(min_cells >= 1, "a window covered no cell centre");
    println!("smallest window: {min_cells} cells of {}", g * g);
}
