//! Person re-identification as a CLASP task plugin.
//!
//! Head: a BNNeck (Luo et al., "Bag of Tricks") on the pooled feature — the feature before the
//! batch norm feeds the triplet loss, the one after it the identity classifier and, at test time,
//! retrieval — optionally after a linear reduction (`head = "reduction"`, fast-reid's reduction
//! head). Loss: identity cross-entropy with label smoothing + batch-hard triplet. Metrics: mAP,
//! CMC and mINP under the Market-1501 protocol ([`ranking`]). Training batches come from the
//! host's identity sampler (`finetune.sampler = "identity"`, P × K).
//!
//! Records carry the person's `identity` and `camera`; training images also their class label
//! `ints = [label]` (0..N−1 in identity order), test images their `role` (query or gallery).

pub mod feature_file;
pub mod market;
pub mod rank_list;
pub mod ranking;
pub mod rerank;
pub mod settings;
pub mod triplet;

use std::path::{Path, PathBuf};

use clasp_sdk::{
    ensure_paired, export_task, fail, input, FeatureMaps, Host, Init, NamedPredictionSets, Outputs,
    Record, Result, Role, SampleStats, Spec, Split, Task, Tensor,
};

use ranking::{QueryScore, RankingMetrics, Side};
use rerank::Rerank;
use settings::{Head, NeckFeature, ReidSettings};
use triplet::{batch_hard_triplet, Margin};

/// The head buffer with the number of training identities (the classifier's width).
const NUM_IDS: &str = "num_ids";

#[derive(Default)]
pub struct ReidTask;

fn num_ids(host: &Host) -> Result<usize> {
    let (_, v) = host.buffer(NUM_IDS, &[1], Init::Constant(0.0))?.to_cpu()?;
    Ok(v[0].max(0.0) as usize)
}

/// Names of the head's outputs.
const FEATURE: &str = "feature";
const LOGITS: &str = "logits";

/// Width of the retrieval feature for a pooled feature of width `pooled`.
fn neck_width(cfg: &ReidSettings, pooled: usize) -> usize {
    match cfg.head {
        Head::Bnneck => pooled,
        Head::Reduction => cfg.reduction_dim,
    }
}

/// The feature before and after the neck's batch norm, `[B, f]` each.
fn neck<'h>(
    host: &'h Host,
    cfg: &ReidSettings,
    x: Tensor<'h>,
    width: usize,
    training: bool,
) -> Result<(Tensor<'h>, Tensor<'h>)> {
    let f = neck_width(cfg, width);
    let feat = if cfg.head == Head::Reduction {
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

fn margin_of(cfg: &ReidSettings) -> Margin {
    if cfg.soft_margin {
        Margin::Soft
    } else {
        Margin::Hard(cfg.margin)
    }
}

/// Each query's score (`None`: no valid match) for `query` ranked against `gallery` with the
/// configured distance and re-ranking.
fn query_scores(
    cfg: &ReidSettings,
    query: &Side,
    gallery: &Side,
    dim: usize,
) -> Result<Vec<Option<QueryScore>>> {
    let distance = cfg.distance;
    if cfg.rerank {
        let p = Rerank {
            k1: cfg.rerank_k1,
            k2: cfg.rerank_k2,
            lambda: cfg.rerank_lambda as f32,
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
    cfg: &ReidSettings,
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
            let (Some(pid), Some(cam), Some(role)) = (
                t.identity.into_option(),
                t.camera.into_option(),
                t.role.into_option(),
            ) else {
                fail!(
                    "{}: a test image needs an identity, a camera and a role",
                    t.image
                );
            };
            if p.values.len() != dim {
                fail!(
                    "{}: feature of width {}, expected {dim}",
                    t.image,
                    p.values.len()
                );
            }
            let side = if role == Role::Query { &mut q } else { &mut g };
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
    type Config = ReidSettings;

    fn spec(&self) -> Spec {
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
            result_files: vec![(
                "features".into(),
                "safetensors of query.features/pids/camids and gallery.features/pids/camids".into(),
            )],
            // The heads: the values of the settings' `head` choice.
            ..Default::default()
        }
    }

    fn prepare(&self, host: &Host, _cfg: &ReidSettings, train: &[Record]) -> Result<()> {
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

    fn build_head(&self, host: &Host, cfg: &ReidSettings, dim: usize) -> Result<()> {
        // A dry run on a zero feature creates every parameter.
        let width = cfg.pool.width(dim);
        let x = host.constant(&[2, width], &vec![0.0; 2 * width])?;
        neck(host, cfg, x, width, false)?;
        classifier(host, neck_width(cfg, width)).map(|_| ())
    }

    fn forward<'h>(
        &self,
        host: &'h Host,
        cfg: &ReidSettings,
        f: &FeatureMaps<'h>,
    ) -> Result<Outputs<'h>> {
        let x = cfg.pool.apply(host, f)?;
        let (feat, normed) = neck(host, cfg, x, cfg.pool.width(f.dim), f.training)?;
        if f.training {
            // The triplet loss reads the feature before the neck's norm, the identity loss the
            // classifier on the one after it.
            let width = neck_width(cfg, cfg.pool.width(f.dim));
            let logits = normed.linear(classifier(host, width)?, None)?;
            return Ok(Outputs::new(vec![(FEATURE, feat), (LOGITS, logits)]));
        }
        let retrieval = match cfg.neck_feat {
            NeckFeature::Before => feat,
            NeckFeature::After => normed,
        };
        Ok(Outputs::new(vec![(FEATURE, retrieval)]))
    }

    fn loss<'h>(
        &self,
        host: &'h Host,
        cfg: &ReidSettings,
        outputs: &Outputs<'h>,
        targets: &[Record],
    ) -> Result<Tensor<'h>> {
        let n = num_ids(host)?;
        let (feat, logits) = (outputs.get(FEATURE)?, outputs.get(LOGITS)?);
        let b = match logits.shape()?.as_slice() {
            [b, w] if *w == n => *b,
            other => fail!("reid loss: logits of shape {other:?}, expected [B, {n}]"),
        };
        if b != targets.len() {
            fail!("reid loss: {b} outputs for {} targets", targets.len());
        }
        let labels: Vec<i64> = targets
            .iter()
            .map(|t| match t.ints.first() {
                Some(l) if (0..n as i64).contains(l) => Ok(*l),
                _ => Err(clasp_sdk::Error::data(format!(
                    "{}: label {:?} is not one of the {n} training identities",
                    t.image,
                    t.ints.first()
                ))),
            })
            .collect::<Result<_>>()?;
        let ids: Vec<f32> = labels.iter().map(|l| *l as f32).collect();
        let id_loss = host.cross_entropy(
            logits,
            host.constant(&[b], &ids)?,
            cfg.label_smoothing,
            None,
        )?;
        let tri = batch_hard_triplet(host, feat, &labels, margin_of(cfg), cfg.triplet_norm)?;
        id_loss
            .affine(cfg.id_loss_weight, 0.0)?
            .add(tri.affine(cfg.triplet_weight, 0.0)?)
    }

    fn decode(
        &self,
        _host: &Host,
        _cfg: &ReidSettings,
        outputs: &Outputs<'_>,
    ) -> Result<Vec<Record>> {
        outputs.get(FEATURE)?.row_records()
    }

    fn evaluate(
        &self,
        cfg: &ReidSettings,
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
        cfg: &ReidSettings,
        predictions: &[Record],
        targets: &[Record],
    ) -> Option<Result<Vec<SampleStats>>> {
        Some(query_rows(cfg, predictions, targets))
    }

    fn metrics_of_samples(
        &self,
        _cfg: &ReidSettings,
        samples: &[SampleStats],
    ) -> Option<Result<Vec<(String, f64)>>> {
        Some(metrics_of_query_rows(samples))
    }

    /// A random ranking: every test image gets a random feature (seeded, so the level is the
    /// same from run to run).
    fn blind_predictions(
        &self,
        _cfg: &ReidSettings,
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
        cfg: &ReidSettings,
        inputs: &[(String, PathBuf)],
    ) -> Option<Result<Vec<(String, f64)>>> {
        let sides = input(inputs, "features").and_then(feature_file::read);
        Some(sides.and_then(|(q, g)| retrieval_metrics(cfg, &q.side(), &g.side(), q.dim)))
    }

    fn dataset(&self, cfg: &ReidSettings, root: &Path, split: Split) -> Result<Vec<Record>> {
        let record = |m: &market::MarketImage| Record {
            image: m.path.display().to_string().into(),
            identity: Some(m.pid).into(),
            camera: Some(m.cam).into(),
            ..Default::default()
        };
        let (query_dir, gallery_dir) = match split {
            Split::Train => {
                // Junk and distractors carry no identity to learn.
                let images: Vec<_> = market::list(&root.join(&cfg.train_dir))?
                    .into_iter()
                    .filter(|m| m.pid > 0)
                    .collect();
                let mut pids: Vec<i64> = images.iter().map(|m| m.pid).collect();
                pids.sort_unstable();
                pids.dedup();
                return Ok(images
                    .iter()
                    .map(|m| {
                        let label = pids.binary_search(&m.pid).expect("listed") as i64;
                        Record {
                            ints: vec![label].into(),
                            ..record(m)
                        }
                    })
                    .collect());
            }
            Split::Val if !root.join(&cfg.val_query_dir).is_dir() => return Ok(Vec::new()),
            Split::Val => (&cfg.val_query_dir, &cfg.val_gallery_dir),
            Split::Test => (&cfg.query_dir, &cfg.gallery_dir),
        };
        let mut out = Vec::new();
        for (dir, role) in [(query_dir, Role::Query), (gallery_dir, Role::Gallery)] {
            for m in market::list(&root.join(dir))? {
                out.push(Record {
                    role: Some(role).into(),
                    ..record(&m)
                });
            }
        }
        Ok(out)
    }

    /// The flip test: the mean of the features of the image and of its mirror image.
    fn merge_flip(
        &self,
        _cfg: &ReidSettings,
        prediction: &Record,
        mirrored: &Record,
    ) -> Option<Result<Record>> {
        if prediction.values.len() != mirrored.values.len() {
            return Some(Err(clasp_sdk::Error::data(format!(
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
        cfg: &ReidSettings,
        image: &Path,
        prediction: &Record,
        gallery: &[Record],
        out: &Path,
    ) -> Option<Result<()>> {
        let values = &prediction.values;
        Some(rank_list::draw_rank_list(
            image,
            values,
            gallery,
            cfg.distance,
            10,
            out,
        ))
    }

    /// A mirrored person keeps their identity and attributes.
    fn flip(
        &self,
        _cfg: &ReidSettings,
        record: &Record,
        _size: [usize; 2],
    ) -> Option<Result<Record>> {
        Some(Ok(record.clone()))
    }

    fn describe(&self, _cfg: &ReidSettings, prediction: &Record) -> Result<String> {
        let norm = prediction.values.iter().map(|v| v * v).sum::<f32>().sqrt();
        Ok(format!(
            "retrieval feature of width {} (norm {norm:.3})",
            prediction.values.len()
        ))
    }
}

/// A row per query with a valid match: AP, rank of the first match, INP and the gallery's size;
/// grouped by the query's identity (the gallery stays whole in every resample).
fn query_rows(
    cfg: &ReidSettings,
    predictions: &[Record],
    targets: &[Record],
) -> Result<Vec<SampleStats>> {
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
}

/// The metrics of rows of [`query_rows`].
fn metrics_of_query_rows(samples: &[SampleStats]) -> Result<Vec<(String, f64)>> {
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
}

export_task!(ReidTask);

#[cfg(test)]
mod scoring_tests {
    use super::*;

    /// The plugin's settings at their defaults, `rerank` as given.
    fn cfg(rerank: bool) -> ReidSettings {
        ReidSettings {
            rerank,
            ..Default::default()
        }
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
            let role = if query == 1 {
                Role::Query
            } else {
                Role::Gallery
            };
            targets.push(Record {
                identity: Some(pid).into(),
                camera: Some(cam).into(),
                role: Some(role).into(),
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
        let task = ReidTask;
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
        let task = ReidTask;
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
