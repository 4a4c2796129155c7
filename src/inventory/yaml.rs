//! A YAML tree that remembers where every node came from.
//!
//! serde-based YAML loaders stop at the first problem and forget positions once
//! a value is typed. `validate` must report every problem with file, line and
//! column, and treat duplicate keys as errors, so the inventory is first read
//! into this position-carrying tree from saphyr's event parser and typed later.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::diagnostics::{Diagnostic, Location};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub loc: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar as written; `quoted` scalars are always strings.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Location,
}

/// What a scalar means under YAML 1.2's core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        let Kind::Scalar { text, quoted } = &self.kind else {
            return None;
        };
        if *quoted {
            return Some(Scalar::Str(text));
        }
        Some(match text.as_str() {
            "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
            "true" | "True" | "TRUE" => Scalar::Bool(true),
            "false" | "False" | "FALSE" => Scalar::Bool(false),
            t => {
                if let Ok(i) = t.parse::<i64>() {
                    Scalar::Int(i)
                } else if looks_like_float(t) {
                    t.parse::<f64>()
                        .map(Scalar::Float)
                        .unwrap_or(Scalar::Str(t))
                } else {
                    Scalar::Str(t)
                }
            }
        })
    }

    pub fn is_null(&self) -> bool {
        matches!(self.scalar(), Some(Scalar::Null))
    }

    /// A short name of this node's type for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Map(_) => "a mapping",
            Kind::Seq(_) => "a list",
            Kind::Scalar { .. } => match self.scalar() {
                Some(Scalar::Null) => "nothing (null)",
                Some(Scalar::Bool(_)) => "a boolean",
                Some(Scalar::Int(_)) => "an integer",
                Some(Scalar::Float(_)) => "a number",
                _ => "a string",
            },
        }
    }
}

fn looks_like_float(t: &str) -> bool {
    let t = t.strip_prefix(['-', '+']).unwrap_or(t);
    !t.is_empty()
        && t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
}

/// Deeper nesting than any inventory needs; past it the recursive walks over
/// the tree (decode, clone, drop) could run out of stack.
pub const MAX_DEPTH: usize = 64;

/// How many nodes the tree may hold once aliases are expanded: a few hundred
/// make a real inventory, and nested aliases ("billion laughs") would
/// otherwise grow exponentially.
pub const MAX_NODES: usize = 250_000;

fn location(span: &Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

/// Parses one YAML document. Duplicate keys are reported and the first one kept,
/// so every other problem in the file can still be found.
pub fn parse(source: &str) -> Result<(Option<Node>, Vec<Diagnostic>), Diagnostic> {
    let mut builder = Builder::default();
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            Diagnostic::error(format!("invalid YAML: {}", e.info())).at(
                "",
                Some(Location {
                    line: m.line(),
                    column: m.col() + 1,
                }),
            )
        })?;
        builder.event(event, span)?;
    }
    Ok((builder.root, builder.diagnostics))
}

enum Frame {
    Seq(Vec<Node>, Location, usize),
    Map {
        entries: Vec<(Key, Node)>,
        /// Where each key was first seen: duplicate detection stays linear
        /// in the number of keys.
        seen: HashMap<String, Location>,
        pending_key: Option<Key>,
        loc: Location,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    /// Anchored nodes with their size in nodes, so an alias is priced before
    /// it is copied.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes in the tree so far, aliases counted expanded.
    nodes: usize,
    diagnostics: Vec<Diagnostic>,
}

fn node_count(node: &Node) -> usize {
    1 + match &node.kind {
        Kind::Scalar { .. } => 0,
        Kind::Seq(items) => items.iter().map(node_count).sum(),
        Kind::Map(entries) => entries.iter().map(|(_, v)| 1 + node_count(v)).sum(),
    }
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Diagnostic> {
        let loc = location(&span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        "the file holds more than one YAML document; an inventory is one document",
                    )
                    .at("", Some(loc)));
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                self.count(1, loc)?;
                let quoted = !matches!(style, ScalarStyle::Plain);
                let node = Node {
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        quoted,
                    },
                    loc,
                };
                self.push(node, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.enter(loc)?;
                self.stack.push(Frame::Seq(Vec::new(), loc, anchor))
            }
            Event::MappingStart(anchor, _) => {
                self.enter(loc)?;
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    seen: HashMap::new(),
                    pending_key: None,
                    loc,
                    anchor,
                })
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(items, loc, anchor)) = self.stack.pop() {
                    self.push(
                        Node {
                            kind: Kind::Seq(items),
                            loc,
                        },
                        anchor,
                    )?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    entries,
                    loc,
                    anchor,
                    ..
                }) = self.stack.pop()
                {
                    self.push(
                        Node {
                            kind: Kind::Map(entries),
                            loc,
                        },
                        anchor,
                    )?;
                }
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    return Err(Diagnostic::error("alias to an unknown anchor").at("", Some(loc)));
                };
                self.count(size, loc)?;
                let node = self.anchors[&id].0.clone();
                // The alias keeps the anchored value but points at its own place.
                self.push(Node { loc, ..node }, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn enter(&mut self, loc: Location) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Diagnostic::error(format!(
                "lists and mappings are nested more than {MAX_DEPTH} levels deep"
            ))
            .at("", Some(loc)));
        }
        self.count(1, loc)
    }

    fn count(&mut self, nodes: usize, loc: Location) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::error(format!(
                "the inventory expands to more than {MAX_NODES} values (aliases counted in full)"
            ))
            .at("", Some(loc))
            .hint("an inventory needs a few hundred; look for aliases (`*name`) that repeat each other"));
        }
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor != 0 {
            let size = node_count(&node);
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(items, _, _)) => items.push(node),
            Some(Frame::Map {
                entries,
                seen,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => {
                    let Kind::Scalar { text, .. } = node.kind else {
                        return Err(Diagnostic::error(
                            "a mapping key must be a plain word, not a list or mapping",
                        )
                        .at("", Some(node.loc)));
                    };
                    *pending_key = Some(Key {
                        name: text,
                        loc: node.loc,
                    });
                }
                Some(key) => {
                    if let Some(first) = seen.get(&key.name) {
                        self.diagnostics.push(
                            Diagnostic::error(format!(
                                "duplicate key `{}` (first defined at line {})",
                                key.name, first.line
                            ))
                            .at("", Some(key.loc))
                            .hint("remove one of the two; YAML keeps only one and ocfo will not guess which"),
                        );
                    } else {
                        seen.insert(key.name.clone(), key.loc);
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(src: &str) -> Node {
        parse(src).unwrap().0.unwrap()
    }

    #[test]
    fn keeps_positions_and_types() {
        let n = root("a: 1\nb:\n  - \"x\"\n  - true\n");
        let Kind::Map(entries) = &n.kind else {
            panic!()
        };
        assert_eq!(entries[0].0.name, "a");
        assert_eq!(entries[0].1.scalar(), Some(Scalar::Int(1)));
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!(items[0].loc, Location { line: 3, column: 5 });
        assert_eq!(items[0].scalar(), Some(Scalar::Str("x")));
        assert_eq!(items[1].scalar(), Some(Scalar::Bool(true)));
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let n = root("a: \"22\"\n");
        let Kind::Map(e) = &n.kind else { panic!() };
        assert_eq!(e[0].1.scalar(), Some(Scalar::Str("22")));
    }

    #[test]
    fn duplicate_keys_are_reported_with_both_lines() {
        let (_, diags) = parse("a: 1\nb: 2\na: 3\n").unwrap();
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("duplicate key `a`"));
        assert!(diags[0].message.contains("line 1"));
        assert_eq!(diags[0].location, Some(Location { line: 3, column: 1 }));
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"));
        assert!(err.location.is_some());
    }

    #[test]
    fn aliases_resolve() {
        let n = root("x: &t {a: 1}\ny: *t\n");
        let Kind::Map(e) = &n.kind else { panic!() };
        assert!(matches!(e[1].1.kind, Kind::Map(_)));
    }

    #[test]
    fn empty_input_has_no_root() {
        assert!(parse("").unwrap().0.is_none());
        assert!(parse("# only a comment\n").unwrap().0.is_none());
    }

    #[test]
    fn nested_aliases_are_capped_not_expanded() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let items = [prev.as_str(); 10].join(", ");
            src.push_str(&format!("a{i}: &a{i} [{items}]\n"));
        }
        let start = std::time::Instant::now();
        let err = parse(&src).unwrap_err();
        assert!(
            err.message.contains("expands to more than"),
            "{}",
            err.message
        );
        assert!(err.location.is_some());
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn deep_nesting_is_a_located_error() {
        for src in [
            format!("a:\n{}x\n", "- ".repeat(10_000)),
            format!("a: {}{}\n", "[".repeat(100), "]".repeat(100)),
        ] {
            let err = parse(&src).unwrap_err();
            assert!(
                err.message.contains("nested more than 64"),
                "{}",
                err.message
            );
            assert!(err.location.is_some());
        }
        // 63 levels under the root mapping are fine.
        let ok = format!("a: {}{}\n", "[".repeat(63), "]".repeat(63));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn many_keys_parse_in_linear_time() {
        let mut src = String::new();
        for i in 0..50_000 {
            src.push_str(&format!("k{i}: 1\n"));
        }
        src.push_str("k7: 2\n");
        let start = std::time::Instant::now();
        let (_, diags) = parse(&src).unwrap();
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("duplicate key `k7`"));
        assert!(
            start.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}
