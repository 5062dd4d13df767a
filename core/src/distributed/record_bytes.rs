//! Records as bytes, so that the processes of a job can send rank 0 their share of an
//! evaluation (predictions, the targets they belong to, the samples they could not read).
//! Little-endian, lengths as u64; only ever read back by the same binary.

use anyhow::{bail, Context, Result};
use clasp_sdk::abi::{Record, Role};

use crate::data::loader::Skipped;

#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt_i64(&mut self, v: Option<i64>) {
        self.0.push(u8::from(v.is_some()));
        self.u64(v.unwrap_or(0) as u64);
    }

    pub fn record(&mut self, r: &Record) {
        self.str(&r.image);
        self.u64(r.values.len() as u64);
        for v in r.values.iter() {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self.u64(r.shape.len() as u64);
        for v in r.shape.iter() {
            self.u64(*v);
        }
        self.u64(r.ints.len() as u64);
        for v in r.ints.iter() {
            self.u64(*v as u64);
        }
        self.opt_i64(r.identity.into_option());
        self.opt_i64(r.camera.into_option());
        self.0.push(match r.role.into_option() {
            None => 0,
            Some(Role::Query) => 1,
            Some(Role::Gallery) => 2,
        });
        match r.label_map.as_ref().into_option() {
            Some(m) => {
                self.0.push(1);
                self.str(m);
            }
            None => self.0.push(0),
        }
    }

    pub fn records(&mut self, rs: &[Record]) {
        self.u64(rs.len() as u64);
        rs.iter().for_each(|r| self.record(r));
    }

    pub fn skipped(&mut self, ss: &[Skipped]) {
        self.u64(ss.len() as u64);
        for s in ss {
            self.u64(s.index as u64);
            self.str(&s.name);
            self.str(&s.error);
        }
    }
}

pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            bail!("truncated: {n} bytes wanted, {} left", self.bytes.len());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.u64()? as usize;
        // A length past what is left is a corrupt message, not an allocation to attempt.
        if n > self.bytes.len() {
            bail!("a length of {n} with {} bytes left", self.bytes.len());
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<String> {
        let n = self.len()?;
        Ok(String::from_utf8(self.take(n)?.to_vec())?)
    }

    fn opt_i64(&mut self) -> Result<Option<i64>> {
        let some = self.take(1)?[0] == 1;
        let v = self.u64()? as i64;
        Ok(some.then_some(v))
    }

    pub fn record(&mut self) -> Result<Record> {
        let image = self.str()?;
        let n = self.len()?;
        let values: Vec<f32> = self
            .take(4 * n)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let n = self.len()?;
        let shape = (0..n).map(|_| self.u64()).collect::<Result<Vec<u64>>>()?;
        let n = self.len()?;
        let ints = (0..n)
            .map(|_| self.u64().map(|v| v as i64))
            .collect::<Result<Vec<i64>>>()?;
        let identity = self.opt_i64()?;
        let camera = self.opt_i64()?;
        let role = match self.take(1)?[0] {
            0 => None,
            1 => Some(Role::Query),
            2 => Some(Role::Gallery),
            b => bail!("no role is numbered {b}"),
        };
        let label_map = match self.take(1)?[0] {
            1 => Some(self.str()?.into()),
            _ => None,
        };
        Ok(Record {
            image: image.into(),
            values: values.into(),
            shape: shape.into(),
            ints: ints.into(),
            identity: identity.into(),
            camera: camera.into(),
            role: role.into(),
            label_map: label_map.into(),
        })
    }

    pub fn records(&mut self) -> Result<Vec<Record>> {
        let n = self.len()?;
        (0..n)
            .map(|i| self.record().with_context(|| format!("record {i}")))
            .collect()
    }

    pub fn skipped(&mut self) -> Result<Vec<Skipped>> {
        let n = self.len()?;
        (0..n)
            .map(|_| {
                Ok(Skipped {
                    index: self.u64()? as usize,
                    name: self.str()?,
                    error: self.str()?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_skipped_samples_come_back_as_they_went() {
        let full = Record {
            image: "a/b.jpg#crop=1,2,3,4".into(),
            values: vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3e38].into(),
            shape: vec![2u64, 2].into(),
            ints: vec![-7i64, i64::MAX].into(),
            identity: Some(-1i64).into(),
            camera: Some(3i64).into(),
            role: Some(Role::Gallery).into(),
            label_map: Some("maps/b.png".into()).into(),
        };
        let records = vec![full, Record::default()];
        let skipped = vec![Skipped {
            index: 4,
            name: "c.jpg".into(),
            error: "not a JPEG".into(),
        }];
        let mut w = Writer::default();
        w.records(&records);
        w.skipped(&skipped);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        assert_eq!(r.records().unwrap(), records);
        let back = r.skipped().unwrap();
        assert_eq!(
            (back[0].index, &*back[0].name, &*back[0].error),
            (4, "c.jpg", "not a JPEG")
        );
        assert!(r.is_empty());
        // A cut message is an error, not a panic or a huge allocation.
        let mut cut = Reader::new(&bytes[..bytes.len() - 3]);
        assert!(cut.records().is_ok() && cut.skipped().is_err());
        assert!(Reader::new(&bytes[..40]).records().is_err());
    }
}
