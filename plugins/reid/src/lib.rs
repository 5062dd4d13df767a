//! Person re-identification as a CLASP task plugin.
//!
//! Head: a BNNeck (Luo et al., "Bag of Tricks") on the pooled feature — the feature before the
//! batch norm feeds the triplet loss, the one after it the identity classifier and, at test time,
//! retrieval — optionally after a linear reduction (`head = "reduction"`, fast-reid's reduction
//! head). Loss: identity cross-entropy with label smoothing + batch-hard triplet. Metrics: mAP,
//! CMC and mINP under the Market-1501 protocol ([`ranking`]). Training batches come from the
//! host's identity sampler (`finetune.sampler = "identity"`, P × K).
//!
//! Records: training images carry `ints = [label, camera, pid]` (labels 0..N−1 in pid order);
//! test images `ints = [pid, camera, is_query]`.

pub mod feature_file;
pub mod market;
pub mod rank_list;
pub mod ranking;
pub mod rerank;
pub mod triplet;

use std::path::{Path, PathBuf};

use clasp_sdk::{
    ensure_paired, export_task, fail, FeatureMaps, Host, Init, NamedPredictionSets, Pool, Record,
    Result, SampleStats, Spec, Task, TaskConfig, Tensor,
};

use ranking::{Distance, QueryScore, RankingMetrics, Side};
use rerank::Rerank;
use triplet::{batch_hard_triplet, Margin};

/// The head buffer with the number of training identities (the classifier's width).
const NUM_IDS: &str = "num_ids";

pub struct ReidTask;

fn num_ids(host: &Host) -> Result<usize> {
    let (_, v) = host.buffer(NUM_IDS, &[1], Init::Constant(0.0))?.to_cpu()?;
    Ok(v[0].max(0.0) as usize)
}

/// Width of the retrieval feature for a pooled feature of width `pooled`.
fn neck_width(cfg: &TaskConfig, pooled: usize) -> Result<usize> {
    match cfg.str("head")?.as_str() {
        "bnneck" => Ok(pooled),
        "reduction" => cfg.usize_in("reduction_dim", 1, TaskConfig::MAX_WIDTH),
        other => fail!("unknown head `{other}` (reid offers: bnneck, reduction)"),
    }
}

/// The feature before and after the neck's batch norm, `[B, f]` each.
fn neck<'h>(
    host: &'h Host,
    cfg: &TaskConfig,
    x: Tensor<'h>,
    width: usize,
    training: bool,
) -> Result<(Tensor<'h>, Tensor<'h>)> {
    let f = neck_width(cfg, width)?;
    let feat = if cfg.str("head")? == "reduction" {
        x.linear(
            host.param("reduction.weight", &[f, width], Init::KaimingUniform)?,
            None,
        )?
    } else {
        x
    };
    // BNNeck: the batch norm's shift stays at zero (no bias), as in the paper.
    let normed = feat.batch_norm(
        Some(host.param("bnneck.weight", &[f], Init::Ones)?),
        None,
        host.buffer("bnneck.running_mean", &[f], Init::Zeros)?,
        host.buffer("bnneck.running_var", &[f], Init::Ones)?,
        training,
        0.1,
        1e-5,
    )?;
    Ok((feat, normed))
}

fn classifier<'h>(host: &'h Host, f: usize) -> Result<Tensor<'h>> {
    let n = num_ids(host)?;
    if n == 0 {
        fail!("the identity count is unknown: fine-tuning calls `prepare` with the training split before `build_head`");
    }
    host.param("classifier.weight", &[n, f], Init::TruncNormal(0.001))
}

fn margin_of(cfg: &TaskConfig) -> Result<Margin> {
    Ok(if cfg.bool("soft_margin")? {
        Margin::Soft
    } else {
        Margin::Hard(cfg.f64("margin")?)
    })
}

/// Each query's score (`None`: no valid match) for `query` ranked against `gallery` with the
/// configured distance and re-ranking.
fn query_scores(
    cfg: &TaskConfig,
    query: &Side,
    gallery: &Side,
    dim: usize,
) -> Result<Vec<Option<QueryScore>>> {
    let distance = Distance::parse(&cfg.str("distance")?)?;
    if cfg.bool("rerank")? {
        let p = Rerank {
            k1: cfg.usize_in("rerank_k1", 1, 10_000)?,
            k2: cfg.usize_in("rerank_k2", 1, 10_000)?,
            lambda: cfg.f64("rerank_lambda")? as f32,
        };
        let d =
            |a: &Side, b: &Side| ranking::distance_matrix(a.features, b.features, dim, distance);
        let (nq, ng) = (query.pids.len(), gallery.pids.len());
        let q_g = d(query, gallery);
        let dist = rerank::re_rank(&q_g, &d(query, query), &d(gallery, gallery), nq, ng, p);
        ranking::query_scores_of_distances(&dist, query, gallery)
    } else {
        ranking::query_scores(query, gallery, dim, distance)
    }
}

/// The task's metrics over query scores (CMC up to rank 10, or the gallery's size).
fn metric_list<'a>(
    scores: impl IntoIterator<Item = &'a QueryScore>,
    gallery_size: usize,
) -> Result<Vec<(String, f64)>> {
    let m = RankingMetrics::from_queries(scores, 10.min(gallery_size))?;
    Ok(vec![
        ("mAP".into(), m.map),
        ("rank1".into(), m.rank(1)),
        ("rank5".into(), m.rank(5)),
        ("rank10".into(), m.rank(10)),
        ("mINP".into(), m.minp),
    ])
}

/// The task's metrics for `query` ranked against `gallery`.
fn retrieval_metrics(
    cfg: &TaskConfig,
    query: &Side,
    gallery: &Side,
    dim: usize,
) -> Result<Vec<(String, f64)>> {
    let scores = query_scores(cfg, query, gallery, dim)?;
    metric_list(scores.iter().flatten(), gallery.pids.len())
}

/// Query and gallery features, identities and cameras of a test split's predictions.
struct Sides {
    dim: usize,
    query: (Vec<f32>, Vec<i64>, Vec<i64>),
    gallery: (Vec<f32>, Vec<i64>, Vec<i64>),
}

impl Sides {
    fn of(predictions: &[Record], targets: &[Record]) -> Result<Self> {
        ensure_paired(predictions, targets)?;
        let dim = predictions.first().map_or(0, |p| p.values.len());
        let mut q = (Vec::new(), Vec::new(), Vec::new());
        let mut g = (Vec::new(), Vec::new(), Vec::new());
        for (p, t) in predictions.iter().zip(targets) {
            let [pid, cam, is_query] = match t.ints.as_slice() {
                [a, b, c] => [*a, *b, *c],
                _ => fail!(
                    "{}: a test image needs ints [pid, camera, is_query]",
                    t.image
                ),
            };
            if p.values.len() != dim {
                fail!(
                    "{}: feature of width {}, expected {dim}",
                    t.image,
                    p.values.len()
                );
            }
            let side = if is_query == 1 { &mut q } else { &mut g };
            side.0.extend_from_slice(&p.values);
            side.1.push(pid);
            side.2.push(cam);
        }
        Ok(Self {
            dim,
            query: q,
            gallery: g,
        })
    }

    fn query(&self) -> Side<'_> {
        Side {
            features: &self.query.0,
            pids: &self.query.1,
            camids: &self.query.2,
        }
    }

    fn gallery(&self) -> Side<'_> {
        Side {
            features: &self.gallery.0,
            pids: &self.gallery.1,
            camids: &self.gallery.2,
        }
    }
}

/// Width of the random features of the random-ranking level.
const RANDOM_FEATURE_DIM: usize = 32;

impl Task for ReidTask {
    fn new() -> Self {
        Self
    }

    fn spec(&self) -> Spec {
        let entry = |k: &str, v: &str, h: &str| (k.to_string(), v.to_string(), h.to_string());
        Spec {
            name: "reid".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "re-identify a person across cameras from appearance: clothing colours, \
                          body shape, carried objects"
                .into(),
            labels: vec!["identity".into()],
            input_size: [256, 128],
            metrics: ["mAP", "rank1", "rank5", "rank10", "mINP"]
                .map(String::from)
                .to_vec(),
            primary_metric: "mAP".into(),
            config: vec![
                entry(
                    "head",
                    "\"bnneck\"",
                    "head variant: bnneck (BN neck on the pooled feature) or reduction (linear to \
                     reduction_dim, then the BN neck)",
                ),
                entry("pool", "\"cls\"", Pool::HELP),
                entry(
                    "reduction_dim",
                    "256",
                    "feature width of the reduction head",
                ),
                entry(
                    "neck_feat",
                    "\"after\"",
                    "retrieval feature: after or before the neck's batch norm",
                ),
                entry(
                    "label_smoothing",
                    "0.1",
                    "label smoothing of the identity loss",
                ),
                entry("id_loss_weight", "1.0", "weight of the identity loss"),
                entry("triplet_weight", "1.0", "weight of the triplet loss"),
                entry("margin", "0.3", "triplet margin"),
                entry(
                    "soft_margin",
                    "false",
                    "soft-margin triplet (softplus) instead of the hinge at `margin`",
                ),
                entry(
                    "triplet_norm",
                    "false",
                    "unit-normalise features before the triplet loss",
                ),
                entry(
                    "distance",
                    "\"cosine\"",
                    "evaluation distance: cosine or euclidean",
                ),
                entry(
                    "rerank",
                    "false",
                    "k-reciprocal re-ranking of the evaluation (holds the (nq+ng)² distances)",
                ),
                entry("rerank_k1", "20", "re-ranking k1"),
                entry("rerank_k2", "6", "re-ranking k2"),
                entry(
                    "rerank_lambda",
                    "0.3",
                    "re-ranking weight of the original distance",
                ),
                entry("train_dir", "\"bounding_box_train\"", "training images"),
                entry("query_dir", "\"query\"", "query images"),
                entry("gallery_dir", "\"bounding_box_test\"", "gallery images"),
                entry(
                    "val_query_dir",
                    "\"val/query\"",
                    "validation queries: identities apart from training and test, on which \
                     epochs and recipes are chosen (a missing folder: no validation split)",
                ),
                entry(
                    "val_gallery_dir",
                    "\"val/bounding_box_test\"",
                    "validation gallery",
                ),
            ],
            head_variants: vec!["bnneck".into(), "reduction".into()],
        }
    }

    fn prepare(&self, host: &Host, _cfg: &TaskConfig, train: &[Record]) -> Result<()> {
        let mut max_label = -1i64;
        for r in train {
            match r.ints.first() {
                Some(l) if *l >= 0 => max_label = max_label.max(*l),
                _ => fail!("{}: a training image needs a label ≥ 0 (ints[0])", r.image),
            }
        }
        if max_label < 1 {
            fail!("the training split has fewer than two identities");
        }
        let n = (max_label + 1) as f32;
        host.assign(
            host.buffer(NUM_IDS, &[1], Init::Constant(0.0))?,
            host.constant(&[1], &[n])?,
        )
    }

    fn build_head(&self, host: &Host, cfg: &TaskConfig, dim: usize) -> Result<()> {
        Distance::parse(&cfg.str("distance")?)?;
        margin_of(cfg)?;
        let neck_feat = cfg.str("neck_feat")?;
        if neck_feat != "after" && neck_feat != "before" {
            fail!("unknown neck_feat `{neck_feat}` (after, before)");
        }
        // A dry run on a zero feature creates every parameter.
        let width = Pool::from_config(cfg)?.width(dim);
        let x = host.constant(&[2, width], &vec![0.0; 2 * width])?;
        neck(host, cfg, x, width, false)?;
        classifier(host, neck_width(cfg, width)?).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        f: &FeatureMaps<'h>,
    ) -> Result<Tensor<'h>> {
        let pool = Pool::from_config(cfg)?;
        let x = pool.apply(host, f)?;
        let (feat, normed) = neck(host, cfg, x, pool.width(f.dim), f.training)?;
        if f.training {
            // [feature for the triplet | identity logits], split again by `loss`.
            let width = neck_width(cfg, pool.width(f.dim))?;
            let logits = normed.linear(classifier(host, width)?, None)?;
            return host.concat(&[feat, logits], 1);
        }
        Ok(if cfg.str("neck_feat")? == "before" {
            feat
        } else {
            normed
        })
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        cfg: &TaskConfig,
        output: Tensor<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let n = num_ids(host)?;
        let [b, width]: [usize; 2] = match output.shape()?.as_slice() {
            [b, w] if *w > n => [*b, *w],
            other => fail!(
                "reid loss: output of shape {other:?}, expected [B, f + {n}] (training forward)"
            ),
        };
        if b != targets.len() {
            fail!("reid loss: {b} outputs for {} targets", targets.len());
        }
        let labels: Vec<i64> = targets
            .iter()
            .map(|t| match t.ints.first() {
                Some(l) if (0..n as i64).contains(l) => Ok(*l),
                _ => Err(clasp_sdk::Error(format!(
                    "{}: label {:?} is not one of the {n} training identities",
                    t.image,
                    t.ints.first()
                ))),
            })
            .collect::<Result<_>>()?;
        let f = width - n;
        let feat = output.narrow(1, 0, f)?;
        let logits = output.narrow(1, f, n)?;
        let ids: Vec<f32> = labels.iter().map(|l| *l as f32).collect();
        let id_loss = host.cross_entropy(
            logits,
            host.constant(&[b], &ids)?,
            cfg.f64("label_smoothing")?,
            None,
        )?;
        let tri = batch_hard_triplet(
            host,
            feat,
            &labels,
            margin_of(cfg)?,
            cfg.bool("triplet_norm")?,
        )?;
        id_loss
            .affine(cfg.f64("id_loss_weight")?, 0.0)?
            .add(tri.affine(cfg.f64("triplet_weight")?, 0.0)?)
    }

    fn decode(&self, _host: &Host, _cfg: &TaskConfig, output: Tensor<'_>) -> Result<Vec<Record>> {
        output.row_records()
    }

    fn evaluate(
        &self,
        cfg: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Result<Vec<(String, f64)>> {
        let sides = Sides::of(predictions, targets)?;
        retrieval_metrics(cfg, &sides.query(), &sides.gallery(), sides.dim)
    }

    /// A row per query with a valid match: AP, rank of the first match, INP and the gallery's
    /// size; grouped by the query's identity (the gallery stays whole in every resample).
    fn sample_statistics(
        &self,
        cfg: &TaskConfig,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        Some((|| {
            let sides = Sides::of(predictions, targets)?;
            let scores = query_scores(cfg, &sides.query(), &sides.gallery(), sides.dim)?;
            let gallery_size = sides.gallery.1.len() as f64;
            Ok(scores
                .iter()
                .zip(&sides.query.1)
                .filter_map(|(s, pid)| {
                    s.map(|s| SampleStats {
                        group: *pid as u64,
                        values: vec![s.ap, s.first_match as f64, s.inp, gallery_size].into(),
                    })
                })
                .collect())
        })())
    }

    fn metrics_of_samples(
        &self,
        _cfg: &TaskConfig,
        samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some((|| {
            let mut scores = Vec::with_capacity(samples.len());
            let mut gallery_size = usize::MAX;
            for s in samples {
                let [ap, first, inp, ng] = s.values.as_slice() else {
                    fail!("a query row of {} values, expected 4", s.values.len());
                };
                gallery_size = gallery_size.min(*ng as usize);
                scores.push(QueryScore {
                    ap: *ap,
                    first_match: *first as usize,
                    inp: *inp,
                });
            }
            metric_list(&scores, gallery_size)
        })())
    }

    /// A random ranking: every test image gets a random feature (seeded, so the level is the
    /// same from run to run).
    fn blind_predictions(
        &self,
        _cfg: &TaskConfig,
        _train: &[Record],
        test: &[Record],
    ) -> Option<Result<NamedPredictionSets>> {
        // xorshift64: the level needs no statistical finesse, only independence from the images.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let random = test
            .iter()
            .map(|t| Record {
                image: t.image.clone(),
                values: (0..RANDOM_FEATURE_DIM).map(|_| next()).collect(),
                ..Default::default()
            })
            .collect();
        Some(Ok(vec![("random ranking".into(), random)]))
    }

    fn evaluate_files(
        &self,
        cfg: &TaskConfig,
        inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some((|| {
            let Some((_, file)) = inputs.iter().find(|(k, _)| k == "features") else {
                fail!("reid scores a feature file: pass --features F.safetensors");
            };
            let (q, g) = feature_file::read(file)?;
            retrieval_metrics(cfg, &q.side(), &g.side(), q.dim)
        })())
    }

    fn dataset(&self, cfg: &TaskConfig, root: &Path, split: &str) -> Result<Vec<Record>> {
        let record = |m: &market::MarketImage, ints: Vec<i64>| Record {
            image: m.path.display().to_string().into(),
            ints: ints.into(),
            ..Default::default()
        };
        match split {
            "train" => {
                // Junk and distractors carry no identity to learn.
                let images: Vec<_> = market::list(&root.join(cfg.str("train_dir")?))?
                    .into_iter()
                    .filter(|m| m.pid > 0)
                    .collect();
                let mut pids: Vec<i64> = images.iter().map(|m| m.pid).collect();
                pids.sort_unstable();
                pids.dedup();
                Ok(images
                    .iter()
                    .map(|m| {
                        let label = pids.binary_search(&m.pid).expect("listed") as i64;
                        record(m, vec![label, m.cam, m.pid])
                    })
                    .collect())
            }
            "test" | "val" => {
                let dirs = if split == "val" {
                    let dirs = [("val_query_dir", 1), ("val_gallery_dir", 0)];
                    if !root.join(cfg.str(dirs[0].0)?).is_dir() {
                        return Ok(Vec::new());
                    }
                    dirs
                } else {
                    [("query_dir", 1), ("gallery_dir", 0)]
                };
                let mut out = Vec::new();
                for (dir, is_query) in dirs {
                    for m in market::list(&root.join(cfg.str(dir)?))? {
                        out.push(record(&m, vec![m.pid, m.cam, is_query]));
                    }
                }
                Ok(out)
            }
            other => fail!("unknown split `{other}` (train, val, test)"),
        }
    }

    /// The flip test: the mean of the features of the image and of its mirror image.
    fn merge_flip(
        &self,
        _cfg: &TaskConfig,
        prediction: &Record,
        mirrored: &Record,
    ) -> Option<Result<Record>> {
        if prediction.values.len() != mirrored.values.len() {
            return Some(Err(clasp_sdk::Error(format!(
                "{}: features of widths {} and {} (mirrored)",
                prediction.image,
                prediction.values.len(),
                mirrored.values.len()
            ))));
        }
        let values: Vec<f32> = prediction
            .values
            .iter()
            .zip(mirrored.values.iter())
            .map(|(a, b)| 0.5 * (a + b))
            .collect();
        Some(Ok(Record {
            values: values.into(),
            ..prediction.clone()
        }))
    }

    fn visualize_ranking(
        &self,
        cfg: &TaskConfig,
        image: &Path,
        prediction: &Record,
        gallery: &[Record],
        out: &Path,
    ) -> Option<Result<()>> {
        Some((|| {
            let distance = Distance::parse(&cfg.str("distance")?)?;
            rank_list::draw_rank_list(image, &prediction.values, gallery, distance, 10, out)
        })())
    }

    /// A mirrored person keeps their identity and attributes.
    fn flip(
        &self,
        _cfg: &TaskConfig,
        record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        Some(Ok(record.clone()))
    }

    fn describe(&self, _cfg: &TaskConfig, prediction: &Record) -> Result<String> {
        let norm = prediction.values.iter().map(|v| v * v).sum::<f32>().sqrt();
        Ok(format!(
            "retrieval feature of width {} (norm {norm:.3})",
            prediction.values.len()
        ))
    }
}

export_task!(ReidTask);

#[cfg(test)]
mod scoring_tests {
    use super::*;

    /// The plugin's settings at their defaults, `rerank` as given.
    fn cfg(rerank: bool) -> TaskConfig {
        // The defaults are TOML scalars, which JSON reads the same.
        let entries: Vec<String> = ReidTask::new()
            .spec()
            .config
            .into_iter()
            .map(|(key, default, _)| match key.as_str() {
                "rerank" => format!("\"{key}\": {rerank}"),
                _ => format!("\"{key}\": {default}"),
            })
            .collect();
        TaskConfig::parse(&format!("{{{}}}", entries.join(", "))).unwrap()
    }

    /// 8 identities, each with two queries (cameras 1, 2) and three gallery images (cameras
    /// 2, 3, 4), plus a distractor; features near the identity's direction by a fixed hash.
    fn split() -> (Vec<Record>, Vec<Record>) {
        let (mut preds, mut targets) = (Vec::new(), Vec::new());
        let mut push = |pid: i64, cam: i64, query: i64, k: usize| {
            let values: Vec<f32> = (0..8)
                .map(|d| {
                    let h = ((pid as usize * 131 + cam as usize * 17 + k * 7 + d * 3) % 11) as f32;
                    (if d as i64 == pid % 8 { 1.0 } else { 0.0 }) + 0.15 * h / 11.0
                })
                .collect();
            preds.push(Record {
                values: values.into(),
                ..Default::default()
            });
            targets.push(Record {
                ints: vec![pid, cam, query].into(),
                ..Default::default()
            });
        };
        for pid in 1..=8 {
            for cam in [1, 2] {
                push(pid, cam, 1, 0);
            }
            for cam in [2, 3, 4] {
                push(pid, cam, 0, 1);
            }
        }
        push(0, 5, 0, 2);
        (preds, targets)
    }

    #[test]
    fn sample_rows_give_back_the_metrics_with_and_without_reranking() {
        let task = ReidTask::new();
        let (preds, targets) = split();
        for rerank in [false, true] {
            let whole = task.evaluate(&cfg(rerank), &preds, &targets).unwrap();
            let rows = task
                .sample_statistics(&cfg(rerank), &preds, &targets)
                .unwrap()
                .unwrap();
            assert_eq!(rows.len(), 16, "one row per query");
            assert!(
                rows.iter().all(|r| (1..=8).contains(&r.group)),
                "grouped by person"
            );
            let again = task
                .metrics_of_samples(&cfg(rerank), &rows)
                .unwrap()
                .unwrap();
            for ((n, a), (_, b)) in whole.iter().zip(&again) {
                assert!((a - b).abs() < 1e-12, "{n}: {a} vs {b} (rerank {rerank})");
            }
        }
    }

    /// The random ranking ignores the images: the same features whatever the predictions, and
    /// far below the perfect ranking on this split.
    #[test]
    fn the_random_ranking_is_the_chance_level() {
        let task = ReidTask::new();
        let (preds, targets) = split();
        let named = task
            .blind_predictions(&cfg(false), &[], &targets)
            .unwrap()
            .unwrap();
        let m = task.evaluate(&cfg(false), &named[0].1, &targets).unwrap();
        let perfect = task.evaluate(&cfg(false), &preds, &targets).unwrap();
        assert!(perfect[0].1 > 0.9, "{perfect:?}");
        assert!(m[0].1 < 0.6, "{m:?}");
        let again = task
            .blind_predictions(&cfg(false), &[], &targets)
            .unwrap()
            .unwrap();
        assert_eq!(named, again);
    }
}
