//! Semantic checks that serde cannot express: ranges, probabilities, divisibility. Each failure
//! names the field by its dotted path.

use crate::*;

type Check = Result<(), (String, String)>;

fn fail(field: &str, msg: impl Into<String>) -> Check {
    Err((field.to_string(), msg.into()))
}

fn prob(field: &str, p: f32) -> Check {
    if !(0.0..=1.0).contains(&p) {
        return fail(field, format!("{p} is not a probability in [0, 1]"));
    }
    Ok(())
}

fn range(field: &str, r: (f32, f32), lo: f32, hi: f32) -> Check {
    if !(r.0 <= r.1 && r.0 >= lo && r.1 <= hi) {
        return fail(
            field,
            format!(
                "({}, {}) must be an ordered range within [{lo}, {hi}]",
                r.0, r.1
            ),
        );
    }
    Ok(())
}

fn positive(field: &str, v: usize) -> Check {
    if v == 0 {
        return fail(field, "must be at least 1");
    }
    Ok(())
}

fn view(prefix: &str, v: &ViewAugment) -> Check {
    let f = |s: &str| format!("{prefix}.{s}");
    if v.size < 16 {
        return fail(&f("size"), format!("{} px is too small for a view", v.size));
    }
    range(&f("scale"), v.scale, 1e-4, 1.0)?;
    if !(v.ratio.0 > 0.0 && v.ratio.0 <= v.ratio.1) {
        return fail(
            &f("ratio"),
            "must be an ordered range of positive aspect ratios",
        );
    }
    prob(&f("color_jitter.p"), v.color_jitter.p)?;
    for (name, x) in [
        ("brightness", v.color_jitter.brightness),
        ("contrast", v.color_jitter.contrast),
        ("saturation", v.color_jitter.saturation),
    ] {
        if !(0.0..=1.0).contains(&x) {
            return fail(
                &f(&format!("color_jitter.{name}")),
                format!("{x} must lie in [0, 1]"),
            );
        }
    }
    if !(0.0..=0.5).contains(&v.color_jitter.hue) {
        return fail(&f("color_jitter.hue"), "must lie in [0, 0.5]");
    }
    prob(&f("grayscale_p"), v.grayscale_p)?;
    prob(&f("blur_p"), v.blur_p)?;
    range(&f("blur_sigma"), v.blur_sigma, 0.0, 50.0)?;
    prob(&f("solarize_p"), v.solarize_p)?;
    prob(&f("flip_p"), v.flip_p)
}

fn moco(prefix: &str, m: &MocoV2Config) -> Check {
    view(&format!("{prefix}.view"), &m.view)?;
    positive(&format!("{prefix}.proj_dim"), m.proj_dim)?;
    positive(&format!("{prefix}.queue_size"), m.queue_size)?;
    if m.temperature <= 0.0 {
        return fail(&format!("{prefix}.temperature"), "must be positive");
    }
    prob(&format!("{prefix}.momentum"), m.momentum)?;
    if let KeyBatchNorm::ShuffledSubBatches(n) = m.key_bn {
        positive(&format!("{prefix}.key_bn"), n)?;
    }
    Ok(())
}

fn decoder(field: &str, d: &DecoderConfig) -> Check {
    positive(&format!("{field}.channels"), d.channels())
}

fn lr_scale(field: &str, s: f64) -> Check {
    if !(s.is_finite() && s > 0.0) {
        return fail(field, format!("must be a positive number, not {s}"));
    }
    Ok(())
}

fn segmentation(prefix: &str, s: &SegmentationConfig) -> Check {
    let f = |n: &str| format!("{prefix}.{n}");
    positive(&f("classes"), s.classes)?;
    if s.classes > 255 {
        return fail(
            &f("classes"),
            "label maps are 8-bit with 255 = ignore: at most 255",
        );
    }
    if ![8, 16, 32].contains(&s.output_stride) {
        return fail(&f("output_stride"), "must be 8, 16 or 32");
    }
    match s.head {
        SegHead::Fcn { channels, .. }
        | SegHead::MocoFcn { channels }
        | SegHead::Psp { channels } => positive(&f("head.channels"), channels)?,
        SegHead::DeepLabV3 { channels, rates } => {
            positive(&f("head.channels"), channels)?;
            if rates.0 == 0 || rates.1 == 0 || rates.2 == 0 {
                return fail(&f("head.rates"), "dilations must be at least 1");
            }
        }
        SegHead::Linear => {}
    }
    if let Some(p) = &s.prototypes {
        let g = |n: &str| f(&format!("prototypes.{n}"));
        positive(&g("per_class"), p.per_class)?;
        positive(&g("sinkhorn_iterations"), p.sinkhorn_iterations)?;
        if !(0.0..1.0).contains(&p.gamma) {
            return fail(&g("gamma"), "must lie in [0, 1)");
        }
        if !(p.sinkhorn_epsilon >= 0.02 && p.sinkhorn_epsilon.is_finite()) {
            // exp(1/ε) must stay finite in fp32: ε ≤ 0.0113 overflows.
            return fail(
                &g("sinkhorn_epsilon"),
                "must be at least 0.02 (exp(1/ε) must stay finite in fp32)",
            );
        }
        for (n, w) in [("ppc_weight", p.ppc_weight), ("ppd_weight", p.ppd_weight)] {
            if !(w >= 0.0 && w.is_finite()) {
                return fail(&g(n), "must be zero or positive");
            }
        }
        if let Some(t) = p.ppc_temperature {
            if !(t > 0.0 && t.is_finite()) {
                return fail(&g("ppc_temperature"), "must be positive");
            }
        }
        if let Some(c) = p.picture_class {
            if c >= s.classes {
                return fail(
                    &g("picture_class"),
                    format!("no class {c} among {}", s.classes),
                );
            }
        }
    }
    if let Some(c) = &s.pixel_contrast {
        let g = |n: &str| f(&format!("pixel_contrast.{n}"));
        positive(&g("proj_dim"), c.proj_dim)?;
        positive(&g("max_views"), c.max_views)?;
        if c.max_samples < c.max_views {
            return fail(&g("max_samples"), "must be at least max_views");
        }
        for (n, v) in [
            ("temperature", c.temperature),
            ("base_temperature", c.base_temperature),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return fail(&g(n), "must be positive");
            }
        }
        if !(c.weight >= 0.0 && c.weight.is_finite()) {
            return fail(&g("weight"), "must be zero or positive");
        }
    }
    if !(0.0..1.0).contains(&s.dropout) {
        return fail(&f("dropout"), "must lie in [0, 1)");
    }
    if !(s.aux_weight >= 0.0 && s.aux_weight.is_finite()) {
        return fail(
            &f("aux_weight"),
            "must be zero (no auxiliary head) or positive",
        );
    }
    if s.aux_weight > 0.0 {
        positive(&f("aux_channels"), s.aux_channels)?;
    }
    positive(&f("crop.0"), s.crop.0)?;
    positive(&f("crop.1"), s.crop.1)?;
    positive(&f("scale.0"), s.scale.0)?;
    positive(&f("scale.1"), s.scale.1)?;
    range(&f("ratio_range"), s.ratio_range, 1e-3, 100.0)?;
    if !(s.cat_max_ratio > 0.0 && s.cat_max_ratio <= 1.0) {
        return fail(&f("cat_max_ratio"), "must lie in (0, 1]");
    }
    prob(&f("flip_p"), s.flip_p)?;
    positive(&f("val_slot.0"), s.val_slot.0)?;
    positive(&f("val_slot.1"), s.val_slot.1)?;
    if let Some((window, stride)) = s.slide {
        positive(&f("slide.0"), window)?;
        if stride == 0 || stride > window {
            return fail(&f("slide.1"), "the stride must lie in 1..=window");
        }
    }
    Ok(())
}

impl RunConfig {
    pub(crate) fn validate(&self) -> Check {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return fail(
                "name",
                "must be non-empty ASCII letters, digits, '-', '_' or '.'",
            );
        }
        let l = &self.loader;
        positive("loader.workers", l.workers)?;
        positive("loader.ring_slots", l.ring_slots)?;
        positive("loader.batch_size", l.batch_size)?;
        positive("loader.world_size", l.world_size)?;
        positive("loader.stall_warning_s", l.stall_warning_s as usize)?;
        if l.rank >= l.world_size {
            return fail(
                "loader.rank",
                format!("rank {} must be below world_size {}", l.rank, l.world_size),
            );
        }
        if l.max_decoded_pixels < 64 * 64 {
            return fail("loader.max_decoded_pixels", "is below a 64×64 image");
        }
        match &self.method {
            MethodConfig::MocoV2(m) => moco("method", m)?,
            MethodConfig::DenseCl(d) => {
                moco("method.moco", &d.moco)?;
                prob("method.dense_weight", d.dense_weight)?;
            }
            MethodConfig::Soco(s) => {
                range("method.crop_scale_min", (s.crop_scale_min, 1.0), 1e-3, 1.0)?;
                positive("method.boxes_per_view", s.boxes_per_view)?;
                positive("method.max_tries", s.max_tries)?;
                prob("method.box_jitter_p", s.box_jitter_p)?;
                let (a, b, c) = s.fpn_level_limits;
                if !(0.0 < a && a < b && b < c) {
                    return fail("method.fpn_level_limits", "must be increasing and positive");
                }
                view("method.view1_color", &s.view1_color)?;
                view("method.view2_color", &s.view2_color)?;
                prob("method.cutout_p", s.cutout_p)?;
                prob("method.momentum_base", s.momentum_base)?;
            }
            MethodConfig::Cp2(c) => {
                view("method.view", &c.view)?;
                range("method.paste_area", c.paste_area, 0.01, 1.0)?;
                if !(c.paste_ratio.0 > 0.0 && c.paste_ratio.0 <= c.paste_ratio.1) {
                    return fail(
                        "method.paste_ratio",
                        "must be an ordered range of positive aspect ratios",
                    );
                }
                if ![8, 16, 32].contains(&c.output_stride) {
                    return fail("method.output_stride", "must be 8, 16 or 32");
                }
                if c.view.size % c.output_stride != 0 {
                    return fail(
                        "method.output_stride",
                        format!(
                            "view size {} is not a multiple of {}",
                            c.view.size, c.output_stride
                        ),
                    );
                }
                prob("method.momentum", c.momentum)?;
            }
            MethodConfig::PatchRotation(p) => {
                view("method.view", &p.view)?;
                positive("method.grid", p.grid)?;
                if p.view.size % p.grid != 0 {
                    return fail(
                        "method.grid",
                        format!("view size {} is not divisible by {}", p.view.size, p.grid),
                    );
                }
                if ![8, 16].contains(&p.output_stride) {
                    return fail("method.output_stride", "must be 8 or 16");
                }
                positive("method.decoder_channels", p.decoder_channels)?;
            }
            MethodConfig::Segmentation(s) => {
                segmentation("method", s)?;
                if !matches!(self.dataset.layout, DatasetLayout::Segmentation { .. }) {
                    return fail(
                        "dataset.layout",
                        "segmentation needs a Segmentation(format: …, split: …) layout",
                    );
                }
            }
            MethodConfig::EdMoco(e) => {
                moco("method.moco", &e.moco)?;
                decoder("method.decoder", &e.decoder)?;
                if ![8, 16].contains(&e.output_stride) {
                    return fail("method.output_stride", "must be 8 or 16");
                }
                lr_scale("method.encoder_lr_scale", e.encoder_lr_scale)?;
            }
            MethodConfig::PatchMoco(p) => {
                moco("method.moco", &p.moco)?;
                if ![8, 16].contains(&p.cell_stride) {
                    return fail(
                        "method.cell_stride",
                        "must be 8 or 16 (the backbone's output stride)",
                    );
                }
                if p.moco.view.size % p.cell_stride != 0 {
                    return fail("method.cell_stride", "must divide the view size");
                }
                if let Some(d) = &p.decoder {
                    decoder("method.decoder", d)?;
                }
                lr_scale("method.encoder_lr_scale", p.encoder_lr_scale)?;
            }
        }
        let t = &self.trainer;
        positive("trainer.epochs", t.epochs)?;
        positive("trainer.base_batch_size", t.base_batch_size)?;
        positive("trainer.checkpoint_every", t.checkpoint_every)?;
        if t.grad_clip_norm.is_some() {
            return fail(
                "trainer.grad_clip_norm",
                "gradient clipping is not implemented (no method's reference uses it); remove the field",
            );
        }
        if t.max_steps == Some(0) {
            return fail("trainer.max_steps", "must be at least 1");
        }
        if let Some(n) = t.threads {
            positive("trainer.threads", n)?;
        }
        match t.optimizer {
            Optimizer::Sgd {
                lr,
                momentum,
                weight_decay,
            }
            | Optimizer::Lars {
                lr,
                momentum,
                weight_decay,
                ..
            } => {
                if !(lr > 0.0 && lr.is_finite()) {
                    return fail("trainer.optimizer.lr", "must be positive");
                }
                if !(0.0..1.0).contains(&momentum) {
                    return fail("trainer.optimizer.momentum", "must lie in [0, 1)");
                }
                if weight_decay < 0.0 {
                    return fail("trainer.optimizer.weight_decay", "must not be negative");
                }
            }
        }
        if let Some(e) = &self.eval {
            positive("eval.batch_size", e.batch_size)?;
            positive("eval.iterations", e.iterations)?;
            if e.max_train_images == Some(0) {
                return fail("eval.max_train_images", "must be at least 1");
            }
            segmentation("eval.segmentation", &e.segmentation)?;
        }
        Ok(())
    }
}
