#!/usr/bin/env bash
# The CamVid quality table (issue 23; a measurement, not a test — never in CI): does each
# pretraining method give a backbone that segments better than random init, at one fixed CPU budget?
#
# For every method and seed: pretrain a ResNet-18 for $STEPS steps on 112² views, batch 32, over
# CamVid's train images plus ../shared/data/photos (no labels; the same budget and resolution for
# every method: the independent PyTorch run quoted in the issue used exactly this for MoCo v2), then
# evaluate the backbone three ways on CamVid (11 classes, val 101 images):
#   * full fine-tuning: FCN (mmseg fcn_r18-d8 widths, at OS16) + auxiliary head, 240×320 crops,
#     batch 4, $FT_ITERS iterations, SGD lr 0.01 poly;
#   * linear probe: one 1×1 classifier on the frozen OS16 features, batch 8, $PROBE_ITERS
#     iterations, lr 0.05;
#   * low-label fine-tuning: the full protocol on the first $LOW train images (about 10 %);
#   * with PROTOCOLS including `protoseg`: full fine-tuning with ProtoSeg's prototype head (10 per
#     class) in place of the FCN head's softmax classifier (issue 17);
#   * with PROTOCOLS including `mocofcn`: full fine-tuning with the SSL4DP draft's MoCoFCN head
#     (2 × 3×3 conv of 128 at dilation 6), which starts from the decoder EDMoCo, PLEDMoCo and PLR
#     pretrained (the others' heads start fresh).
# The SSL4DP methods (plr, edmoco, plmoco, pledmoco) are the draft's continued pretraining: they
# start from this seed's MoCo v2 checkpoint and run $CONT_STEPS more steps ("200 + 20").
# Random init is evaluated the same three ways per seed (the floor). Prints a markdown table of
# val mIoU (mean and spread over the seeds) for BENCHMARKS.md; every number's eval.json stays under
# $OUT.
#
#   scripts/quality-table.sh                          # the whole table (many hours on 2 cores)
#   STEPS=20 FT_ITERS=10 PROBE_ITERS=10 SEEDS=1 METHODS=mocov2 scripts/quality-table.sh   # a smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1766}
FT_ITERS=${FT_ITERS:-1200}
PROBE_ITERS=${PROBE_ITERS:-800}
LOW=${LOW:-37}
SEEDS=${SEEDS:-"1 2"}
METHODS=${METHODS:-"mocov2 densecl soco cp2 cp2qt plr edmoco plmoco pledmoco"}
CONT_STEPS=${CONT_STEPS:-$((STEPS / 10))}
PROTOCOLS=${PROTOCOLS:-"full probe low"}
DATA=$(cd "${DATA:-../shared/data}" && pwd)
OUT=${OUT:-runs/quality}

bash scripts/setup.sh --libtorch
source scripts/env-libtorch.sh
cargo build -q --release -p loader --bin loader -p trainer --features trainer/tch --bin trainer \
  -p tools --bin launch --bin evaluate --bin precompute-proposals
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# The pretraining images: CamVid train + the photos, listed relative to $DATA.
list="$OUT/pretrain.txt"
sed 's|^\(.*\)$|camvid/JPEGImages/\1.jpg|' "$DATA/camvid/ImageSets/Segmentation/train.txt" > "$list"
(cd "$DATA" && ls photos/ | grep -iE '\.(jpe?g|png)$' | sed 's|^|photos/|') >> "$list"
# Epochs so that the cosine schedule spans the $STEPS steps (the trainer's schedule runs over
# epochs × batches per epoch; max_steps only stops the run).
epochs_for() { echo $(( ($1 + $(wc -l < "$list") / 32 - 1) / ($(wc -l < "$list") / 32) )); }

# eval sections: full fine-tuning, linear probe, low-label.
eval_section() { # protocol
    local head="Fcn(convs: 2, channels: 128, concat_input: true)" aux=0.4 frozen=false
    local batch=4 iters=$FT_ITERS lr=0.01 max=None protos=""
    case $1 in
        probe) head=Linear aux=0.0 frozen=true batch=8 iters=$PROBE_ITERS lr=0.05 ;;
        low) max="Some($LOW)" ;;
        mocofcn) head="MocoFcn(channels: 128)" ;;
        protoseg) protos="prototypes: (per_class: 10)," ;;
    esac
    cat <<EOF
    eval: (
        root: "$DATA/camvid",
        format: Voc(label_dir: "SegmentationClass"),
        max_train_images: $max,
        segmentation: (
            classes: 11,
            class_names: ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"],
            head: $head,
            $protos
            aux_weight: $aux,
            aux_channels: 64,
            frozen_backbone: $frozen,
            output_stride: 16,
            crop: (240, 320),
            scale: (480, 360),
        ),
        batch_size: $batch,
        iterations: $iters,
        optimizer: Sgd(lr: $lr, momentum: 0.9, weight_decay: 5e-4),
        schedule: Poly(power: 0.9, min_lr: 1e-4),
    ),
EOF
}

method_section() { # method seed
    case $1 in
        mocov2) echo "method: MocoV2(view: (size: 112), queue_size: 4096, key_bn: ShuffledSubBatches(2))," ;;
        densecl) echo "method: DenseCl(moco: (view: (size: 112), queue_size: 4096, key_bn: ShuffledSubBatches(2)))," ;;
        soco) echo "method: Soco(image_size: 112, v3_size: 56, fpn_level_limits: (24.0, 48.0, 96.0), fpn_channels: 64, head_fc: 256, proj_hidden: 512, proj_dim: 128)," ;;
        cp2) echo "method: Cp2(view: (size: 112), aspp_channels: 64, proj_dim: 64, queue_size: 4096, key_bn: ShuffledSubBatches(2))," ;;
        cp2qt) echo "method: Cp2(view: (size: 112), aspp_channels: 64, proj_dim: 64, queue_size: 4096, key_bn: ShuffledSubBatches(2), init_from: \"$OUT/mocov2-s$2/pretrain/last.ckpt\")," ;;
        plr) echo "method: PatchRotation(view: (size: 112), grid: 4, output_stride: 16, decoder_channels: 128, init_from: \"$OUT/mocov2-s$2/pretrain/last.ckpt\")," ;;
        edmoco) echo "method: EdMoco(moco: (view: (size: 112), queue_size: 4096, key_bn: ShuffledSubBatches(2)), decoder: MocoFcn(channels: 128), output_stride: 16, init_from: \"$OUT/mocov2-s$2/pretrain/last.ckpt\")," ;;
        plmoco) echo "method: PatchMoco(moco: (view: (size: 112), queue_size: 4096, key_bn: ShuffledSubBatches(2)), cell_stride: 16, init_from: \"$OUT/mocov2-s$2/pretrain/last.ckpt\")," ;;
        pledmoco) echo "method: PatchMoco(moco: (view: (size: 112), queue_size: 4096, key_bn: ShuffledSubBatches(2)), cell_stride: 16, decoder: Some(MocoFcn(channels: 128)), encoder_lr_scale: 0.01, init_from: \"$OUT/mocov2-s$2/pretrain/last.ckpt\")," ;;
    esac
}

optimizer_section() { # method
    case $1 in
        soco) echo "optimizer: Lars(lr: 1.0, momentum: 0.9, weight_decay: 1e-5, trust_coefficient: 0.001, eps: 1e-8), base_batch_size: 256," ;;
        *) echo "optimizer: Sgd(lr: 0.03, momentum: 0.9, weight_decay: 1e-4), base_batch_size: 256," ;;
    esac
}

write_config() { # name method seed protocol proposals
    local proposals="" steps=$STEPS
    case $2 in plr|edmoco|plmoco|pledmoco) steps=$CONT_STEPS ;; esac
    [ -n "${5:-}" ] && proposals=", proposals: \"$5\""
    cat <<EOF
RunConfig(
    name: "$1", seed: $3,
    dataset: (root: "$DATA", layout: FileList(list: "$list")$proposals),
    loader: (workers: 2, ring_slots: 3, batch_size: 32),
    $(method_section "$2" "$3")
    trainer: (arch: ResNet18, epochs: $(epochs_for "$steps"), max_steps: Some($steps), $(optimizer_section "$2")
              schedule: Cosine(warmup_epochs: 0.0, final_lr: 0.0), checkpoint_every: 500),
$(eval_section "$4")
)
EOF
}

evaluate() { # config out [extra args]
    local cfg=$1 out=$2; shift 2
    [ -f "$out/eval.json" ] && return 0
    RUST_LOG=warn ./target/release/evaluate --config "$cfg" --out-dir "$out" "$@" | grep -E '^mIoU' || return 1
}

for seed in $SEEDS; do
    for method in random $METHODS; do
        dir="$OUT/$method-s$seed"
        mkdir -p "$dir"
        proposals=""
        if [ "$method" = soco ]; then
            proposals="$OUT/pretrain.pstore"
            if [ ! -f "$proposals.done" ]; then
                write_config quality-proposals mocov2 0 full > "$OUT/proposals.ron"
                ./target/release/precompute-proposals run --config "$OUT/proposals.ron" --out "$proposals" --workers 2
                touch "$proposals.done"
            fi
        fi
        for protocol in full probe low mocofcn protoseg; do
            write_config "q-$method-s$seed" "${method/random/mocov2}" "$seed" "$protocol" "$proposals" \
                > "$dir/$protocol.ron"
        done
        if [ "$method" = random ]; then
            for protocol in $PROTOCOLS; do
                echo "quality: random init, seed $seed, $protocol" >&2
                evaluate "$dir/$protocol.ron" "$dir/$protocol" --random-init-only
            done
            continue
        fi
        if [ ! -f "$dir/pretrain/last.ckpt" ] || [ ! -f "$dir/pretrain.done" ]; then
            echo "quality: pretraining $method, seed $seed" >&2
            RUST_LOG=warn ./target/release/launch --config "$dir/full.ron" --out-dir "$dir/pretrain" | grep -E 'summary' || exit 1
            touch "$dir/pretrain.done"
        fi
        for protocol in $PROTOCOLS; do
            echo "quality: $method, seed $seed, $protocol" >&2
            evaluate "$dir/$protocol.ron" "$dir/$protocol" --backbone "$dir/pretrain/last.ckpt"
        done
    done
done

python3 - "$OUT" "$SEEDS" "random $METHODS" "$STEPS" <<'PY'
import json, statistics, sys
from pathlib import Path
out, seeds, methods, steps = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
names = {"random": "random init (floor)", "mocov2": "MoCo v2", "densecl": "DenseCL", "soco": "SoCo",
         "cp2": "CP²", "cp2qt": "CP² Quick Tuning (from MoCo v2)", "plr": "MoCo v2 + PLR",
         "edmoco": "MoCo v2 + EDMoCo", "plmoco": "MoCo v2 + PLMoCo", "pledmoco": "MoCo v2 + PLEDMoCo"}
print(f"CamVid val mIoU (%), ResNet-18, {steps} pretraining steps of batch 32 at 112²; mean ± spread over seeds {', '.join(seeds)}")
protocols = [p for p in ["full", "probe", "low", "mocofcn", "protoseg"] if list(out.glob(f"*/{p}/eval.json"))]
heads = {"full": "full fine-tuning", "probe": "linear probe", "low": "10 % labels", "mocofcn": "MoCoFCN head",
         "protoseg": "ProtoSeg head (full fine-tuning)"}
print("| backbone | " + " | ".join(heads[p] for p in protocols) + " |")
print("|---" * (len(protocols) + 1) + "|")
for m in methods:
    row = [names.get(m, m)]
    for p in protocols:
        v = []
        for s in seeds:
            f = out / f"{m}-s{s}" / p / "eval.json"
            if f.exists():
                v.append(json.loads(f.read_text())[0]["miou"] * 100)
        if not v:
            row.append("–")
        elif len(v) == 1:
            row.append(f"{v[0]:.2f}")
        else:
            row.append(f"{statistics.mean(v):.2f} ± {(max(v) - min(v)) / 2:.2f} ({', '.join(f'{x:.2f}' for x in v)})")
    print("| " + " | ".join(row) + " |")
PY
