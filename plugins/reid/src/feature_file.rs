//! Query and gallery features written by any system, as one safetensors file:
//! `query.features` `[nq, d]`, `query.pids` `[nq]`, `query.camids` `[nq]`, and the same under
//! `gallery.` — what `clasp eval --task reid --input features=F` scores.

use std::path::Path;

use clasp_sdk::{fail, Result};
use safetensors::{Dtype, SafeTensors};

use crate::ranking::Side;

/// One side (query or gallery) of a feature file.
pub struct FeatureSet {
    pub features: Vec<f32>,
    pub dim: usize,
    pub pids: Vec<i64>,
    pub camids: Vec<i64>,
}

impl FeatureSet {
    pub fn side(&self) -> Side<'_> {
        Side {
            features: &self.features,
            pids: &self.pids,
            camids: &self.camids,
        }
    }
}

fn values(st: &SafeTensors, file: &Path, key: &str) -> Result<(Vec<usize>, Vec<f64>)> {
    let t = match st.tensor(key) {
        Ok(t) => t,
        Err(_) => fail!(
            "{}: no tensor `{key}` (a reid feature file holds query.features, query.pids, \
             query.camids and the same under gallery.)",
            file.display()
        ),
    };
    let b = t.data();
    let v: Vec<f64> = match t.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        Dtype::I64 => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
            .collect(),
        Dtype::I32 => b
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
            .collect(),
        other => fail!(
            "{}: `{key}` has dtype {other:?}; use F32, F64, I64 or I32",
            file.display()
        ),
    };
    Ok((t.shape().to_vec(), v))
}

fn side(st: &SafeTensors, file: &Path, prefix: &str) -> Result<FeatureSet> {
    let (shape, f) = values(st, file, &format!("{prefix}.features"))?;
    let [n, dim] = match shape.as_slice() {
        [n, d] => [*n, *d],
        other => fail!(
            "{}: `{prefix}.features` has shape {other:?}, expected [n, dim]",
            file.display()
        ),
    };
    let ids = |name: &str| -> Result<Vec<i64>> {
        let key = format!("{prefix}.{name}");
        let (shape, v) = values(st, file, &key)?;
        if shape.iter().product::<usize>() != n {
            fail!(
                "{}: `{key}` has shape {shape:?} for {n} features",
                file.display()
            );
        }
        // An id must be a whole number: a cast would turn 3.7 into 3 and NaN into 0.
        match v.iter().position(|x| x.fract() != 0.0 || !x.is_finite()) {
            Some(row) => fail!(
                "{}: `{key}` row {row} is {}, not an integer id",
                file.display(),
                v[row]
            ),
            None => Ok(v.into_iter().map(|x| x as i64).collect()),
        }
    };
    if let Some(i) = f.iter().position(|x| !(*x as f32).is_finite()) {
        fail!(
            "{}: `{prefix}.features` row {} holds {} (column {}): features must be finite",
            file.display(),
            i / dim.max(1),
            f[i],
            i % dim.max(1)
        );
    }
    Ok(FeatureSet {
        features: f.into_iter().map(|x| x as f32).collect(),
        dim,
        pids: ids("pids")?,
        camids: ids("camids")?,
    })
}

/// Reads the query and gallery sides of `file`.
pub fn read(file: &Path) -> Result<(FeatureSet, FeatureSet)> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => fail!("{}: {e}", file.display()),
    };
    let st = match SafeTensors::deserialize(&bytes) {
        Ok(st) => st,
        Err(e) => fail!("{}: not a safetensors file ({e})", file.display()),
    };
    let (q, g) = (side(&st, file, "query")?, side(&st, file, "gallery")?);
    if q.dim != g.dim {
        fail!(
            "{}: query features have width {}, gallery features {}",
            file.display(),
            q.dim,
            g.dim
        );
    }
    Ok((q, g))
}
