//! Where each key of a YAML document stands, so that validation errors name `file:line:column`.
//!
//! serde forgets positions once a value is deserialized; this module walks the same text with an
//! event parser and records, for every key path (`routes[1].upstream`), the position of its key
//! (or, for a sequence item, of the item). It also reports duplicate mapping keys, which serde
//! would otherwise resolve silently by keeping one of them.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// Key paths of a document and where they stand.
#[derive(Debug, Default)]
pub struct Locations {
    positions: HashMap<String, Position>,
    /// Keys that appear twice in one mapping: (path, position of the second).
    pub duplicates: Vec<(String, Position)>,
}

impl Locations {
    /// Index `text`. A document that does not parse gives an empty index: serde reports the
    /// syntax error with its own position.
    pub fn index(text: &str) -> Self {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut walker, false).is_err() {
            return Self::default();
        }
        walker.locations
    }

    /// The position of `path`, or of its nearest ancestor that has one; line 1 when none does.
    pub fn find(&self, path: &str) -> Position {
        let mut path = path;
        loop {
            if let Some(pos) = self.positions.get(path) {
                return *pos;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return Position { line: 1, column: 1 },
            }
        }
    }
}

enum Frame {
    Map {
        path: String,
        /// The key whose value comes next; `None` while a key is expected.
        key: Option<String>,
        seen: Vec<String>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    locations: Locations,
}

fn position(mark: Marker) -> Position {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Walker {
    /// The path of the node that starts now, recording it; `None` when the node is a mapping key.
    fn node_path(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                self.locations
                    .positions
                    .insert(item.clone(), position(mark));
                Some(item)
            }
            Some(Frame::Map { path, key, seen }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let name = scalar.unwrap_or("?").to_string();
                    let full = join(path, &name);
                    if seen.contains(&name) {
                        self.locations.duplicates.push((full, position(mark)));
                    } else {
                        seen.push(name.clone());
                        self.locations
                            .positions
                            .entry(full)
                            .or_insert(position(mark));
                    }
                    *key = Some(name);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                self.node_path(Some(&value), mark);
            }
            Event::Alias(_) => {
                self.node_path(Some("*alias"), mark);
            }
            Event::MappingStart(..) => {
                let path = self.node_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    seen: Vec::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(None, mark).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "server:\n  admin: x\nroutes:\n  - name: a\n    upstream: u\n  - name: b\n    match: {host: h}\n";

    #[test]
    fn keys_and_items_have_their_positions() {
        let loc = Locations::index(DOC);
        assert_eq!(loc.find("server.admin"), Position { line: 2, column: 3 });
        assert_eq!(loc.find("routes[0].upstream").line, 5);
        assert_eq!(loc.find("routes[1]").line, 6);
        assert_eq!(loc.find("routes[1].match.host").line, 7);
    }

    #[test]
    fn unknown_paths_fall_back_to_their_parent() {
        let loc = Locations::index(DOC);
        assert_eq!(loc.find("routes[1].match.nope").line, 7);
        assert_eq!(loc.find("nothing.at.all").line, 1);
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let loc = Locations::index("a: 1\nb: 2\na: 3\n");
        assert_eq!(
            loc.duplicates,
            vec![("a".to_string(), Position { line: 3, column: 1 })]
        );
    }
}
