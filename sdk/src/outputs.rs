//! A head's outputs for a batch, by name: what `forward` returns and `loss` and `decode` read.

use crate::abi::NamedTensor;
use crate::host::{Host, Result, Tensor};
use crate::Error;

/// The name of the output of a head that has one.
pub const OUTPUT: &str = "output";

/// Named tensors in the order `forward` produced them.
#[derive(Clone)]
pub struct Outputs<'h> {
    pub named: Vec<(String, Tensor<'h>)>,
}

impl<'h> Outputs<'h> {
    pub fn new(named: Vec<(&str, Tensor<'h>)>) -> Self {
        Self {
            named: named.into_iter().map(|(n, t)| (n.to_string(), t)).collect(),
        }
    }

    /// The output called `name`.
    pub fn get(&self, name: &str) -> Result<Tensor<'h>> {
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = self.named.iter().map(|(n, _)| n.as_str()).collect();
                Error::data(format!(
                    "the head has no output `{name}` (it has: {names:?})"
                ))
            })
    }

    /// The one output of a head that has one (`forward` returned a tensor).
    pub fn single(&self) -> Result<Tensor<'h>> {
        match self.named.as_slice() {
            [(_, t)] => Ok(*t),
            _ => self.get(OUTPUT),
        }
    }

    pub(crate) fn from_abi(host: &'h Host, named: &[NamedTensor]) -> Self {
        Self {
            named: named
                .iter()
                .map(|n| (n.name.to_string(), host.tensor(n.id)))
                .collect(),
        }
    }

    pub(crate) fn into_abi(self) -> Vec<NamedTensor> {
        self.named
            .into_iter()
            .map(|(name, t)| NamedTensor {
                name: name.into(),
                id: t.id,
            })
            .collect()
    }
}

impl<'h> From<Tensor<'h>> for Outputs<'h> {
    fn from(t: Tensor<'h>) -> Self {
        Self {
            named: vec![(OUTPUT.to_string(), t)],
        }
    }
}
