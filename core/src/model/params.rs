//! A named store of trainable variables with deterministic, seeded initialisation.
//!
//! Candle's `VarMap` initialises from the device RNG, which differs between CPU and CUDA and cannot
//! be seeded per model. We initialise on the CPU with our own seeded RNG and then move the values to
//! the target device, so the same seed gives the same model everywhere.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Shape, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a fresh parameter is filled.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Zeros,
    Ones,
    Const(f32),
    /// Normal(0, std) truncated at ±2·std, as timm's `trunc_normal_`.
    TruncNormal(f32),
    /// Uniform(-a, a).
    Uniform(f32),
}

struct Inner {
    vars: BTreeMap<String, Var>,
    rng: ChaCha8Rng,
}

/// Owns every trainable variable of a model, keyed by its full dotted name (timm's names).
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    device: Device,
    dtype: DType,
    /// A model built to be run, not trained: see [`ParamStore::frozen`].
    frozen: bool,
}

impl ParamStore {
    pub fn new(device: &Device, seed: u64) -> Self {
        Self::with_dtype(device, seed, DType::F32)
    }

    /// A store whose variables have `dtype` (F64 serves finite-difference checks).
    pub fn with_dtype(device: &Device, seed: u64, dtype: DType) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                vars: BTreeMap::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            })),
            device: device.clone(),
            dtype,
            frozen: false,
        }
    }

    /// A store for a model that is loaded to be run, never trained: its variables start as zeros
    /// (no random draws — a strict load overwrites every one) and the model holds detached
    /// handles on them, so a forward pass records no autograd graph and frees each activation as
    /// soon as the next op has read it. (With tracked weights, every op of a batch keeps its
    /// inputs alive until the batch's output is dropped: several GiB for a ViT-B/16 batch of 32.)
    /// `Var::set` writes in place, so the handles see what the load writes.
    pub fn frozen(device: &Device) -> Self {
        Self {
            frozen: true,
            ..Self::new(device, 0)
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The root scope; `scope.pp("blocks").pp(3)` names `blocks.3.*`.
    pub fn root(&self) -> Scope {
        Scope {
            store: self.clone(),
            prefix: String::new(),
        }
    }

    /// Creates (or returns, if it exists with the same shape) the variable `name`.
    pub fn get_or_init(&self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let mut inner = self.inner.lock().expect("param store poisoned");
        if let Some(v) = inner.vars.get(name) {
            if v.dims() != shape {
                bail!(
                    "parameter `{name}` exists with shape {:?}, requested {:?}",
                    v.dims(),
                    shape
                );
            }
            return Ok(self.handle(v));
        }
        let n: usize = shape.iter().product();
        let init = if self.frozen { Init::Zeros } else { init };
        let values: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Const(c) => vec![c; n],
            Init::TruncNormal(std) => (0..n)
                .map(|_| loop {
                    let z: f32 = inner.rng.sample(StandardNormal);
                    if z.abs() <= 2.0 {
                        break z * std;
                    }
                })
                .collect(),
            Init::Uniform(a) => (0..n).map(|_| inner.rng.gen_range(-a..=a)).collect(),
        };
        let t = Tensor::from_vec(values, Shape::from(shape), &Device::Cpu)?
            .to_dtype(self.dtype)?
            .to_device(&self.device)?;
        let var = Var::from_tensor(&t)?;
        let out = self.handle(&var);
        inner.vars.insert(name.to_string(), var);
        Ok(out)
    }

    /// What the model holds of a variable: the variable itself, or a detached view of its storage.
    fn handle(&self, var: &Var) -> Tensor {
        if self.frozen {
            var.as_tensor().detach()
        } else {
            var.as_tensor().clone()
        }
    }

    /// Adds the variable `name` holding `value` (a copy, moved to this store's device and dtype);
    /// an existing variable of that name is an error.
    pub fn insert(&self, name: &str, value: &Tensor) -> Result<()> {
        let mut inner = self.inner.lock().expect("param store poisoned");
        if inner.vars.contains_key(name) {
            bail!("parameter `{name}` exists already");
        }
        let t = value.to_dtype(self.dtype)?.to_device(&self.device)?;
        inner.vars.insert(name.to_string(), Var::from_tensor(&t)?);
        Ok(())
    }

    /// All variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let inner = self.inner.lock().expect("param store poisoned");
        inner
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        let inner = self.inner.lock().expect("param store poisoned");
        inner.vars.keys().cloned().collect()
    }

    pub fn get(&self, name: &str) -> Option<Var> {
        let inner = self.inner.lock().expect("param store poisoned");
        inner.vars.get(name).cloned()
    }

    pub fn num_params(&self) -> usize {
        self.vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Current values as plain tensors (for saving).
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_detached_tensor()))
            .collect()
    }

    /// Overwrites every variable from `tensors`. Missing or unexpected keys and shape mismatches
    /// are errors that list them all: a model is never left silently half-initialised.
    pub fn load_strict(&self, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        let report = self.load_report(tensors);
        if !report.missing.is_empty() || !report.unexpected.is_empty() {
            bail!(
                "checkpoint does not match the model: missing keys {:?}; unexpected keys {:?}",
                report.missing,
                report.unexpected
            );
        }
        self.load_matching(tensors)
    }

    /// Which names the model has and `tensors` lacks, and the reverse.
    pub fn load_report(&self, tensors: &BTreeMap<String, Tensor>) -> LoadReport {
        let names = self.names();
        let missing = names
            .iter()
            .filter(|n| !tensors.contains_key(*n))
            .cloned()
            .collect();
        let unexpected = tensors
            .keys()
            .filter(|k| self.get(k).is_none())
            .cloned()
            .collect();
        LoadReport {
            missing,
            unexpected,
        }
    }

    /// Sets every variable that `tensors` holds; shapes must agree. Returns nothing about the rest:
    /// callers use [`ParamStore::load_report`] to say which keys stay new.
    pub fn load_matching(&self, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
        for (name, var) in self.vars() {
            if let Some(t) = tensors.get(&name) {
                if t.dims() != var.dims() {
                    bail!(
                        "parameter `{name}`: checkpoint shape {:?} but model shape {:?}",
                        t.dims(),
                        var.dims()
                    );
                }
                let t = t
                    .to_dtype(var.dtype())?
                    .to_device(var.device())
                    .with_context(|| format!("moving `{name}` to the device"))?;
                var.set(&t)?;
            }
        }
        Ok(())
    }
}

/// The result of comparing a model's variables with a set of tensors.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
}

/// Box–Muller standard normal (rand 0.8 keeps `StandardNormal` in rand_distr; this avoids the dep).
pub(crate) struct StandardNormal;

impl rand::distributions::Distribution<f32> for StandardNormal {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// A name prefix inside a [`ParamStore`], as candle's `VarBuilder::pp`.
#[derive(Clone)]
pub struct Scope {
    store: ParamStore,
    prefix: String,
}

impl Scope {
    pub fn pp<S: std::fmt::Display>(&self, name: S) -> Scope {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{}", self.prefix, name)
        };
        Scope {
            store: self.store.clone(),
            prefix,
        }
    }

    pub fn name(&self, leaf: &str) -> String {
        if self.prefix.is_empty() {
            leaf.to_string()
        } else {
            format!("{}.{}", self.prefix, leaf)
        }
    }

    pub fn get(&self, leaf: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        self.store.get_or_init(&self.name(leaf), shape, init)
    }

    pub fn device(&self) -> &Device {
        self.store.device()
    }

    pub fn dtype(&self) -> DType {
        self.store.dtype()
    }

    pub fn store(&self) -> &ParamStore {
        &self.store
    }
}

impl ParamStore {
    /// Variables whose gradient is missing, non-finite or all zero, with the reason. Training code
    /// and tests use it to catch ops that silently cut the gradient.
    pub fn gradient_problems(
        &self,
        grads: &candle_core::backprop::GradStore,
    ) -> Result<Vec<(String, &'static str)>> {
        self.gradient_problems_by(|_, var| grads.get(var.as_tensor()).cloned())
    }

    /// [`Self::gradient_problems`] with each variable's gradient from `grad_of(name, var)`.
    pub fn gradient_problems_by(
        &self,
        grad_of: impl Fn(&str, &Var) -> Option<Tensor>,
    ) -> Result<Vec<(String, &'static str)>> {
        let mut problems = Vec::new();
        for (name, var) in self.vars() {
            let Some(g) = grad_of(&name, &var) else {
                problems.push((name, "no gradient"));
                continue;
            };
            let g = g.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            if g.iter().any(|x| !x.is_finite()) {
                problems.push((name, "non-finite gradient"));
            } else if g.iter().all(|x| *x == 0.0) {
                problems.push((name, "all-zero gradient"));
            }
        }
        Ok(problems)
    }
}
