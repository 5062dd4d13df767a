//! Several results of one task on one test split, read together: each with its 95 % interval,
//! beside the image-blind levels, and the paired differences asked for — all on the same
//! bootstrap draws of the test split's people, so what the variants share cancels out.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::blind::BlindLevel;
use super::bootstrap::{replicate, Draws, Interval, Replicated};
use super::scored_split::Sample;
use crate::plugin_host::scoring::Scorer;

/// One result to compare: its name and its test rows, per training run and head.
pub struct Entry<'a> {
    pub name: &'a str,
    pub runs: Vec<Vec<&'a [Sample]>>,
}

/// `a − b` on the same draws.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Difference {
    pub a: String,
    pub b: String,
    pub interval: Interval,
}

impl Difference {
    /// "ahead", "behind" or "not separated" (the interval holds 0).
    pub fn verdict(&self) -> &'static str {
        match (self.interval.excludes_zero(), self.interval.value > 0.0) {
            (false, _) => "not separated",
            (true, true) => "ahead",
            (true, false) => "behind",
        }
    }
}

/// One metric of the results compared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    pub metric: String,
    pub replicates: usize,
    /// Draws on which some result had no value for the metric (left out of its interval).
    pub undefined_draws: usize,
    pub results: Vec<(String, Interval)>,
    pub blind: Vec<(String, Interval)>,
    /// Each result minus the highest image-blind level, on the same draws.
    pub over_blind: Vec<Difference>,
    pub differences: Vec<Difference>,
}

impl Comparison {
    pub fn result(&self, name: &str) -> Option<&Interval> {
        self.results.iter().find(|(n, _)| n == name).map(|r| &r.1)
    }

    /// The highest image-blind level.
    pub fn best_blind(&self) -> Option<&(String, Interval)> {
        self.blind
            .iter()
            .max_by(|a, b| a.1.value.total_cmp(&b.1.value))
    }
}

fn sorted_groups(rows: &[Sample]) -> Vec<u64> {
    let mut g: Vec<u64> = rows.iter().map(|s| s.group).collect();
    g.sort_unstable();
    g
}

/// Compares `entries` on each of `metrics` with `replicates` bootstrap draws (seeded by
/// `rng_seed`), beside the `blind` levels, with the differences `pairs` (names of entries).
/// Every result and level must score the same samples (the same groups).
pub fn compare(
    scorer: &Scorer,
    metrics: &[&str],
    entries: &[Entry],
    blind: &[BlindLevel],
    pairs: &[(&str, &str)],
    replicates: usize,
    rng_seed: u64,
) -> Result<Vec<Comparison>> {
    let first = entries
        .iter()
        .flat_map(|e| e.runs.iter().flatten())
        .next()
        .context("nothing to compare")?;
    let groups = sorted_groups(first);
    let check = |name: &str, rows: &[Sample]| -> Result<()> {
        if sorted_groups(rows) != groups {
            bail!(
                "`{name}` was scored on other samples than `{}`: results compared on one test \
                 split must score the same samples",
                entries[0].name
            );
        }
        Ok(())
    };
    for e in entries {
        for rows in e.runs.iter().flatten() {
            check(e.name, rows)?;
        }
    }
    for level in blind {
        if let Some(rows) = &level.scores.samples {
            check(&level.name, rows)?;
        }
    }
    let draws = Draws::new(&groups, replicates, rng_seed);
    let mut values_of = |rows: &[Sample]| -> Result<Vec<f64>> {
        let abi: Vec<_> = rows.iter().map(Sample::to_abi).collect();
        let m = scorer.metrics_of_samples(&abi)?.ok_or_else(|| {
            scorer.plugin.call_error(
                "metrics_of_samples",
                "the plugin offers no per-sample metrics",
            )
        })?;
        metrics
            .iter()
            .map(|name| {
                m.iter()
                    .find(|(k, _)| k == name)
                    .map(|m| m.1)
                    .with_context(|| {
                        format!("plugin `{}` has no metric `{name}`", scorer.plugin.name())
                    })
            })
            .collect()
    };
    // Per result (then per blind level), one `Replicated` per metric.
    let mut replicated: Vec<(String, Vec<Replicated>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let r = replicate(&e.runs, &draws, i as u64, &mut values_of)?;
        replicated.push((e.name.to_string(), r));
    }
    let mut levels: Vec<(String, Vec<Replicated>)> = Vec::new();
    for (i, level) in blind.iter().enumerate() {
        let Some(rows) = &level.scores.samples else {
            continue;
        };
        let stream = (entries.len() + i) as u64;
        let r = replicate(&[vec![rows.as_slice()]], &draws, stream, &mut values_of)?;
        levels.push((level.name.clone(), r));
    }
    let mut out = Vec::new();
    for (k, metric) in metrics.iter().enumerate() {
        let find = |name: &str| {
            replicated
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| &r[k])
                .with_context(|| format!("no result named `{name}` to compare"))
        };
        let over_blind = match levels
            .iter()
            .max_by(|a, b| a.1[k].value.total_cmp(&b.1[k].value))
        {
            Some((name, level)) => replicated
                .iter()
                .map(|(n, r)| Difference {
                    a: n.clone(),
                    b: name.clone(),
                    interval: r[k].minus(&level[k]),
                })
                .collect(),
            None => Vec::new(),
        };
        let mut differences = Vec::new();
        for (a, b) in pairs {
            differences.push(Difference {
                a: a.to_string(),
                b: b.to_string(),
                interval: find(a)?.minus(find(b)?),
            });
        }
        let undefined_draws = replicated
            .iter()
            .chain(&levels)
            .map(|(_, r)| r[k].undefined())
            .max()
            .unwrap_or(0);
        if undefined_draws > 0 {
            tracing::warn!(
                "{metric}: {undefined_draws} of {replicates} bootstrap draws left it undefined \
                 for some result; its intervals leave those draws out"
            );
        }
        out.push(Comparison {
            metric: metric.to_string(),
            replicates,
            undefined_draws,
            results: replicated
                .iter()
                .map(|(n, r)| (n.clone(), r[k].interval()))
                .collect(),
            blind: levels
                .iter()
                .map(|(n, r)| (n.clone(), r[k].interval()))
                .collect(),
            over_blind,
            differences,
        });
    }
    Ok(out)
}
