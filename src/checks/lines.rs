//! Where each field of a YAML document is: parse once into a
//! `serde_json::Value` and, alongside, a tree of line numbers with the same
//! shape, so a finding can name the line of the offending field instead of
//! the object's first line.
//!
//! A mapping entry's line is the line of its key; a sequence item's line is
//! the line of the item (the `-` line for a block mapping item). A field that
//! does not exist (e.g. a missing `readOnlyRootFilesystem`) resolves to its
//! nearest existing parent.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use serde_json::Value;
use serde_saphyr::Spanned;

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A field inside an object, e.g. `spec.template.spec.containers[0].image`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<PathSeg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }
    /// `a.b.c` from plain keys.
    pub fn of(keys: &[&str]) -> Self {
        FieldPath(keys.iter().map(|k| PathSeg::Key(k.to_string())).collect())
    }
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(k.to_string()));
        p
    }
    pub fn keys(&self, ks: &[&str]) -> Self {
        let mut p = self.clone();
        p.0.extend(ks.iter().map(|k| PathSeg::Key(k.to_string())));
        p
    }
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(i));
        p
    }
}

impl fmt::Display for FieldPath {
    /// kubectl's JSONPath spelling without the leading dot; keys that are not
    /// plain identifiers (annotations, `tls.crt`) in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                PathSeg::Index(n) => write!(f, "[{n}]")?,
                PathSeg::Key(k)
                    if !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                PathSeg::Key(k) => write!(f, "[{k:?}]")?,
            }
        }
        Ok(())
    }
}

impl Serialize for FieldPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    /// Reports are written, not read back: a path read from JSON keeps its text as one key.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(FieldPath(vec![PathSeg::Key(s)]))
    }
}

/// Line numbers (1-based, within the parsed text) shaped like the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineMap {
    pub line: usize,
    children: Children,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Children {
    #[default]
    Leaf,
    /// Keys by hash: no copy of every key of every document (the audit of
    /// 10,000 objects would hold a million of them).
    Map(Vec<(u64, LineMap)>),
    Seq(Vec<LineMap>),
}

/// FNV-1a: a key's identity within one mapping.
fn key_hash(k: &str) -> u64 {
    k.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl LineMap {
    /// The line of `path`, or of its deepest existing parent.
    pub fn line_of(&self, path: &FieldPath) -> usize {
        let mut cur = self;
        for seg in &path.0 {
            let next = match (&cur.children, seg) {
                (Children::Map(m), PathSeg::Key(k)) => {
                    let h = key_hash(k);
                    m.iter().rev().find(|(n, _)| *n == h).map(|(_, l)| l)
                }
                (Children::Seq(s), PathSeg::Index(i)) => s.get(*i),
                _ => None,
            };
            match next {
                Some(n) if n.line > 0 => cur = n,
                _ => break,
            }
        }
        cur.line
    }

    /// The tree as a flat list of numbers (what `pake audit` keeps between
    /// its passes: ~10 bytes a field instead of ~50): per node, in preorder,
    /// its line, then its shape (`tag << 30 | children`), then for a mapping
    /// each child's key hash (two numbers) before the child.
    pub fn pack(&self, out: &mut Vec<u32>) {
        out.push(u32::try_from(self.line).unwrap_or(u32::MAX));
        let shape = |tag: u32, n: usize| (tag << 30) | (n.min((1 << 30) - 1) as u32);
        match &self.children {
            Children::Leaf => out.push(shape(0, 0)),
            Children::Map(m) => {
                out.push(shape(1, m.len()));
                for (h, l) in m {
                    out.push(*h as u32);
                    out.push((*h >> 32) as u32);
                    l.pack(out);
                }
            }
            Children::Seq(s) => {
                out.push(shape(2, s.len()));
                for l in s {
                    l.pack(out);
                }
            }
        }
    }

    /// The tree [`LineMap::pack`] flattened.
    pub fn unpack(data: &[u32]) -> LineMap {
        fn node(data: &[u32], at: &mut usize) -> LineMap {
            let mut next = || {
                let v = data.get(*at).copied().unwrap_or(0);
                *at += 1;
                v
            };
            let line = next() as usize;
            let shape = next();
            let n = (shape & ((1 << 30) - 1)) as usize;
            let children = match shape >> 30 {
                1 => Children::Map(
                    (0..n)
                        .map(|_| {
                            let lo = u64::from(data.get(*at).copied().unwrap_or(0));
                            let hi = u64::from(data.get(*at + 1).copied().unwrap_or(0));
                            *at += 2;
                            (lo | (hi << 32), node(data, at))
                        })
                        .collect(),
                ),
                2 => Children::Seq((0..n).map(|_| node(data, at)).collect()),
                _ => Children::Leaf,
            };
            LineMap { line, children }
        }
        node(data, &mut 0)
    }

    /// Shift every line by `offset` (a document's first line in its file, minus one).
    pub fn shift(&mut self, offset: usize) {
        if self.line > 0 {
            self.line += offset;
        }
        match &mut self.children {
            Children::Leaf => {}
            Children::Map(m) => m.iter_mut().for_each(|(_, l)| l.shift(offset)),
            Children::Seq(s) => s.iter_mut().for_each(|l| l.shift(offset)),
        }
    }
}

/// A parsed document: its value and where each field is.
#[derive(Debug, Clone)]
pub struct Lined {
    pub value: Value,
    pub lines: LineMap,
}

impl<'de> Deserialize<'de> for Lined {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LinedVisitor)
    }
}

struct LinedVisitor;

fn leaf(value: Value) -> Lined {
    Lined {
        value,
        lines: LineMap::default(),
    }
}

impl<'de> Visitor<'de> for LinedVisitor {
    type Value = Lined;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Lined, E> {
        Ok(leaf(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Lined, E> {
        Ok(leaf(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Lined, E> {
        Ok(leaf(Value::from(v)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Lined, E> {
        Value::deserialize(de::value::I128Deserializer::<E>::new(v)).map(leaf)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Lined, E> {
        Value::deserialize(de::value::U128Deserializer::<E>::new(v)).map(leaf)
    }
    fn visit_f64<E>(self, v: f64) -> Result<Lined, E> {
        Ok(leaf(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<Lined, E> {
        Ok(leaf(Value::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Lined, E> {
        Ok(leaf(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Lined, E> {
        Ok(leaf(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Lined, E> {
        Ok(leaf(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Lined, D::Error> {
        Lined::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Lined, D::Error> {
        Lined::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lined, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut lines = Vec::with_capacity(values.capacity());
        while let Some(item) = seq.next_element::<Spanned<Lined>>()? {
            let mut l = item.value.lines;
            l.line = item.referenced.line() as usize;
            values.push(item.value.value);
            lines.push(l);
        }
        Ok(Lined {
            value: Value::Array(values),
            lines: LineMap {
                line: 0,
                children: Children::Seq(lines),
            },
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Lined, A::Error> {
        let mut values = serde_json::Map::new();
        let mut lines = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let v: Lined = map.next_value()?;
            let mut l = v.lines;
            l.line = key.referenced.line() as usize;
            lines.push((key_hash(&key.value), l));
            values.insert(key.value, v.value);
        }
        Ok(Lined {
            value: Value::Object(values),
            lines: LineMap {
                line: 0,
                children: Children::Map(lines),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Lined {
        serde_saphyr::from_str(t).unwrap()
    }

    #[test]
    fn value_equals_plain_parse_and_lines_point_at_fields() {
        let t = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    a.b/c: \"x\"\nspec:\n  containers:\n  - name: a\n    image: x\n    securityContext:\n      privileged: true\n  - name: b\n    ports: [{containerPort: 80}]\n";
        let l = parse(t);
        assert_eq!(l.value, serde_saphyr::from_str::<Value>(t).unwrap());
        let c = FieldPath::of(&["spec", "containers"]);
        assert_eq!(
            l.lines
                .line_of(&c.index(0).keys(&["securityContext", "privileged"])),
            12
        );
        assert_eq!(l.lines.line_of(&c.index(1)), 13);
        assert_eq!(l.lines.line_of(&c.index(1).key("ports").index(0)), 14);
        // Missing fields resolve to their nearest parent.
        assert_eq!(
            l.lines.line_of(
                &c.index(1)
                    .keys(&["securityContext", "readOnlyRootFilesystem"])
            ),
            13
        );
        assert_eq!(
            l.lines
                .line_of(&FieldPath::of(&["metadata", "annotations", "a.b/c"])),
            6
        );
        assert_eq!(l.lines.line_of(&FieldPath::root()), 0);
        let mut shifted = l.lines.clone();
        shifted.shift(10);
        assert_eq!(shifted.line_of(&c.index(1)), 23);
        let mut packed = Vec::new();
        shifted.pack(&mut packed);
        assert_eq!(LineMap::unpack(&packed), shifted);
    }

    #[test]
    fn anchors_and_scalars_keep_their_values() {
        let t = "a: &x {b: 1, c: [true, null, 1.5, \"s\"]}\nd: *x\ne: 18446744073709551615\n";
        let l = parse(t);
        assert_eq!(l.value, serde_saphyr::from_str::<Value>(t).unwrap());
    }

    #[test]
    fn paths_print_like_jsonpath() {
        let p = FieldPath::of(&[
            "metadata",
            "annotations",
            "nginx.ingress.kubernetes.io/ssl-redirect",
        ]);
        assert_eq!(
            p.to_string(),
            "metadata.annotations[\"nginx.ingress.kubernetes.io/ssl-redirect\"]"
        );
        assert_eq!(
            FieldPath::of(&["spec", "containers"])
                .index(2)
                .key("image")
                .to_string(),
            "spec.containers[2].image"
        );
    }
}
