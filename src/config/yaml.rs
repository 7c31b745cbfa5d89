//! YAML with positions: a small node tree built from `saphyr-parser` events and
//! a serde [`Deserializer`] over it.
//!
//! Why not deserialize straight from text: one error would stop the whole load,
//! and errors found after deserialization (a bad regex, a missing block) would
//! have no line and column. With a tree, each check is deserialized on its own
//! (every error of a file is reported at once), any field path can be located
//! later ([`Node::find`]), duplicate keys are caught, and `${VAR}`
//! interpolation happens per scalar where its position is known. Plain scalars
//! are typed by what the target field asks for, so `port: ${PORT}` and
//! `version: 8.2` as a string both work.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Unexpected,
    Visitor,
};

use super::error::Pos;

/// A YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

/// The shape of a node.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar; `plain` is false for quoted and block scalars (always strings).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

fn pos(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// Parses one YAML document. An empty document is `Ok(None)`.
pub fn parse(src: &str) -> Result<Option<Node>, (Pos, String)> {
    let mut b = Builder {
        parser: Parser::new_from_str(src),
        anchors: HashMap::new(),
    };
    let mut root = None;
    loop {
        let (ev, span) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(root),
            Event::DocumentStart(_) => {
                if root.is_some() {
                    return Err((
                        pos(&span),
                        "only one YAML document is allowed in a config file".into(),
                    ));
                }
                let (ev, span) = b.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    continue;
                }
                root = Some(b.node(ev, span)?);
            }
            _ => return Err((pos(&span), "unexpected YAML structure".into())),
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), (Pos, String)> {
        match self.parser.next_event() {
            Some(Ok(e)) => Ok(e),
            Some(Err(e)) => {
                let m = e.marker();
                Err((
                    Pos {
                        line: m.line(),
                        col: m.col() + 1,
                    },
                    e.info().to_string(),
                ))
            }
            None => Err((Pos::default(), "unexpected end of YAML".into())),
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span) -> Result<Node, (Pos, String)> {
        let at = pos(&span);
        let (node, anchor) = match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let tagged_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let plain = style == ScalarStyle::Plain && !tagged_str;
                (
                    Node {
                        pos: at,
                        value: Value::Scalar {
                            text: text.into_owned(),
                            plain,
                        },
                    },
                    anchor,
                )
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span)?);
                }
                (
                    Node {
                        pos: at,
                        value: Value::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(ev, span)?;
                    let (ev, span) = self.next()?;
                    let value = self.node(ev, span)?;
                    if let Value::Scalar { text, .. } = &key.value
                        && entries.iter().any(
                            |(k, _)| matches!(&k.value, Value::Scalar { text: t, .. } if t == text),
                        )
                    {
                        return Err((key.pos, format!("duplicate key `{text}`")));
                    }
                    entries.push((key, value));
                }
                (
                    Node {
                        pos: at,
                        value: Value::Map(entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let mut node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or((at, "alias to an unknown anchor".to_string()))?;
                node.pos = at;
                return Ok(node);
            }
            _ => return Err((at, "unexpected YAML structure".into())),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

impl Node {
    /// The node at a field path such as `checks[2].http.expect.status[0]`, or the
    /// deepest node that exists on the way (so an error about a missing field
    /// points at the map that lacks it).
    pub fn find(&self, path: &str) -> &Node {
        self.walk(path, false)
    }

    /// Like [`Node::find`], but when the path ends in a map key, the key
    /// itself: for errors about a field being there at all.
    pub fn find_key(&self, path: &str) -> &Node {
        self.walk(path, true)
    }

    fn walk(&self, path: &str, want_key: bool) -> &Node {
        let steps = split_path(path);
        let last = steps.len();
        let mut node = self;
        for (i, step) in steps.into_iter().enumerate() {
            let next = match (&node.value, step) {
                (Value::Map(entries), Step::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| matches!(&key.value, Value::Scalar { text, .. } if text == k))
                    .map(|(key, v)| if want_key && i + 1 == last { key } else { v }),
                (Value::Seq(items), Step::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// The scalar text, if this is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is a plain null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if is_null(text))
    }
}

enum Step<'p> {
    Key(&'p str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                steps.push(Step::Index(i));
            }
        }
    }
    steps
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// Expands `${...}` in one scalar, or says why it cannot.
pub type Interpolate<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// A deserialization error with the position and field path where it arose.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub pos: Option<Pos>,
    pub path: String,
}

impl DeError {
    /// Attaches the innermost position: the first caller to locate wins.
    fn at(mut self, node: &Node, path: &str) -> DeError {
        if self.pos.is_none() {
            self.pos = Some(node.pos);
            self.path = path.to_string();
        }
        self
    }
}

impl std::fmt::Display for DeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            pos: None,
            path: String::new(),
        }
    }
}

/// Deserializes `T` from a node; `path` is the node's own field path, used in
/// errors. `interp` expands `${...}` in scalars (keys are never expanded).
pub fn from_node<T: de::DeserializeOwned>(
    node: &Node,
    path: &str,
    interp: Interpolate<'_>,
) -> Result<T, DeError> {
    T::deserialize(De {
        node,
        path: path.to_string(),
        interp,
    })
}

/// The deserializer over one node.
pub struct De<'a> {
    node: &'a Node,
    path: String,
    interp: Interpolate<'a>,
}

impl<'a> De<'a> {
    fn scalar(&self) -> Option<(String, bool)> {
        match &self.node.value {
            Value::Scalar { text, plain } => Some((text.clone(), *plain)),
            _ => None,
        }
    }

    /// The scalar text after interpolation.
    fn text(&self) -> Result<Option<(String, bool)>, DeError> {
        match self.scalar() {
            Some((t, plain)) => {
                let t = (self.interp)(&t).map_err(de::Error::custom)?;
                Ok(Some((t, plain)))
            }
            None => Ok(None),
        }
    }

    fn unexpected(&self) -> Unexpected<'static> {
        match &self.node.value {
            Value::Seq(_) => Unexpected::Seq,
            Value::Map(_) => Unexpected::Map,
            Value::Scalar { .. } => Unexpected::Other("scalar"),
        }
    }

    fn child(&self, node: &'a Node, path: String) -> De<'a> {
        De {
            node,
            path,
            interp: self.interp,
        }
    }
}

macro_rules! number {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
            let r = match self.text()? {
                Some((t, _)) => match t.trim().parse::<$ty>() {
                    Ok(n) => v.$visit(n),
                    Err(_) => Err(de::Error::invalid_type(Unexpected::Str(&t), &v)),
                },
                None => Err(de::Error::invalid_type(self.unexpected(), &v)),
            };
            r.map_err(|e: DeError| e.at(self.node, &self.path))
        }
    };
}

impl<'de, 'a> Deserializer<'de> for De<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Seq(_) => return self.deserialize_seq(v),
            Value::Map(_) => return self.deserialize_map(v),
            Value::Scalar { text, plain: true } if is_null(text) => v.visit_unit(),
            Value::Scalar { .. } => {
                let (t, plain) = self.text()?.expect("scalar");
                if !plain {
                    v.visit_string(t)
                } else if let Some(b) = parse_bool(&t) {
                    v.visit_bool(b)
                } else if let Ok(i) = t.parse::<i64>() {
                    v.visit_i64(i)
                } else if let Ok(u) = t.parse::<u64>() {
                    v.visit_u64(u)
                } else if let Some(f) = t.parse::<f64>().ok().filter(|f| f.is_finite()) {
                    v.visit_f64(f)
                } else {
                    v.visit_string(t)
                }
            }
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.text()? {
            Some((t, _)) => match parse_bool(t.trim()) {
                Some(b) => v.visit_bool(b),
                None => Err(de::Error::invalid_type(Unexpected::Str(&t), &v)),
            },
            None => Err(de::Error::invalid_type(self.unexpected(), &v)),
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    number!(deserialize_i8, visit_i8, i8);
    number!(deserialize_i16, visit_i16, i16);
    number!(deserialize_i32, visit_i32, i32);
    number!(deserialize_i64, visit_i64, i64);
    number!(deserialize_u8, visit_u8, u8);
    number!(deserialize_u16, visit_u16, u16);
    number!(deserialize_u32, visit_u32, u32);
    number!(deserialize_u64, visit_u64, u64);
    number!(deserialize_f32, visit_f32, f32);
    number!(deserialize_f64, visit_f64, f64);

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_string(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_string(v)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.text()? {
            Some((t, _)) => v.visit_string(t),
            None => Err(de::Error::invalid_type(self.unexpected(), &v)),
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_string(v)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_string(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            v.visit_none()
        } else {
            v.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = if self.node.is_null() {
            v.visit_unit()
        } else {
            Err(de::Error::invalid_type(self.unexpected(), &v))
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Seq(items) => v.visit_seq(Seq {
                de: &self,
                items: items.iter().enumerate(),
            }),
            _ if self.node.is_null() => v.visit_seq(Seq {
                de: &self,
                items: [].iter().enumerate(),
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Map(entries) => v.visit_map(Map {
                de: &self,
                entries: entries.iter(),
                value: None,
            }),
            _ if self.node.is_null() => v.visit_map(Map {
                de: &self,
                entries: [].iter(),
                value: None,
            }),
            _ => Err(de::Error::invalid_type(self.unexpected(), &v)),
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Scalar { .. } => {
                let (t, _) = self.text()?.expect("scalar");
                v.visit_enum(t.into_deserializer())
            }
            Value::Map(entries) if entries.len() == 1 => v.visit_enum(Enum {
                de: &self,
                key: &entries[0].0,
                value: &entries[0].1,
            }),
            _ => Err(de::Error::custom(
                "expected a name, or a map with a single key",
            )),
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        let r = match self.scalar() {
            Some((t, _)) => v.visit_string(t),
            None => Err(de::Error::invalid_type(self.unexpected(), &v)),
        };
        r.map_err(|e: DeError| e.at(self.node, &self.path))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }
}

fn child_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

struct Seq<'d, 'a, I> {
    de: &'d De<'a>,
    items: I,
}

impl<'de, 'd, 'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'de> for Seq<'d, 'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => {
                let path = format!("{}[{i}]", self.de.path);
                let child = self.de.child(node, path.clone());
                seed.deserialize(child)
                    .map(Some)
                    .map_err(|e| e.at(node, &path))
            }
            None => Ok(None),
        }
    }
}

struct Map<'d, 'a, I> {
    de: &'d De<'a>,
    entries: I,
    value: Option<(&'a Node, String)>,
}

impl<'de, 'd, 'a, I: Iterator<Item = &'a (Node, Node)>> MapAccess<'de> for Map<'d, 'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let name = key.as_str().unwrap_or("?");
        let path = child_key(&self.de.path, name);
        self.value = Some((value, path.clone()));
        let key_de = De {
            node: key,
            path: path.clone(),
            interp: &|s: &str| Ok(s.to_string()),
        };
        seed.deserialize(key_de)
            .map(Some)
            .map_err(|e| e.at(key, &path))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, DeError> {
        let (node, path) = self.value.take().expect("value after key");
        seed.deserialize(self.de.child(node, path.clone()))
            .map_err(|e| e.at(node, &path))
    }
}

struct Enum<'d, 'a> {
    de: &'d De<'a>,
    key: &'a Node,
    value: &'a Node,
}

impl<'de, 'd, 'a> de::EnumAccess<'de> for Enum<'d, 'a> {
    type Error = DeError;
    type Variant = De<'a>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, De<'a>), DeError> {
        let name = self.key.as_str().unwrap_or("?");
        let path = child_key(&self.de.path, name);
        let key_de = De {
            node: self.key,
            path: path.clone(),
            interp: &|s: &str| Ok(s.to_string()),
        };
        let v = seed
            .deserialize(key_de)
            .map_err(|e| e.at(self.key, &path))?;
        Ok((v, self.de.child(self.value, path)))
    }
}

impl<'de, 'a> de::VariantAccess<'de> for De<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        port: u16,
        #[serde(default)]
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        items: Vec<Inner>,
    }

    fn none(s: &str) -> Result<String, String> {
        Ok(s.to_string())
    }

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nb:\n  c: x\n").unwrap().unwrap();
        assert_eq!(n.find("b.c").pos, Pos { line: 3, col: 6 });
        assert_eq!(n.find("a").pos, Pos { line: 1, col: 4 });
    }

    #[test]
    fn unknown_field_points_at_the_key() {
        let n = parse("items:\n  - port: 1\n  - port: 2\n    nmae: x\n")
            .unwrap()
            .unwrap();
        let e = from_node::<Outer>(&n, "", &none).unwrap_err();
        assert_eq!(e.path, "items[1].nmae");
        assert_eq!(e.pos, Some(Pos { line: 4, col: 5 }));
        assert!(
            e.message.starts_with("unknown field `nmae`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_number_points_at_the_value() {
        let n = parse("items:\n  - port: eighty\n").unwrap().unwrap();
        let e = from_node::<Outer>(&n, "", &none).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.pos),
            ("items[0].port", Some(Pos { line: 2, col: 11 }))
        );
        assert!(e.message.contains("expected u16"), "{}", e.message);
    }

    #[test]
    fn missing_field_points_at_the_map() {
        let n = parse("items:\n  - name: x\n").unwrap().unwrap();
        let e = from_node::<Outer>(&n, "", &none).unwrap_err();
        assert_eq!(e.path, "items[0]");
        assert_eq!(e.message, "missing field `port`");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let (p, m) = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!((p.line, m.as_str()), (2, "duplicate key `a`"));
    }

    #[test]
    fn interpolation_applies_to_numbers_and_strings() {
        let n = parse("items:\n  - port: ${P}\n    name: \"${P}\"\n")
            .unwrap()
            .unwrap();
        let interp = |s: &str| Ok(s.replace("${P}", "8080"));
        let o: Outer = from_node(&n, "", &interp).unwrap();
        assert_eq!(
            o.items[0],
            Inner {
                port: 8080,
                name: Some("8080".into())
            }
        );
    }

    /// Found by fuzzing (config_load): a lone CR breaks a line, as in YAML
    /// and in editors, so an error after CRs is on a later line than a count
    /// of `\n` says.
    #[test]
    fn a_lone_cr_breaks_lines() {
        let (p, m) = parse("a: 1\r\rb: c: d\n").unwrap_err();
        assert_eq!(
            (p.line, m.as_str()),
            (3, "mapping values are not allowed in this context")
        );
        let n = parse("a: 1\r\nb: x\r\n").unwrap().unwrap();
        assert_eq!(n.find("b").pos, Pos { line: 2, col: 4 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let (p, _) = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(p.line >= 1);
    }
}
