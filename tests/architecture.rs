//! The layer table in docs/architecture.md, held against the crate's own
//! imports: a module may use only its own floor or lower ones, and no circle
//! of imports runs between files of different top-level modules. The doc is
//! the one source of truth: this test reads its floor table and its table of
//! known exceptions, and fails on an import the doc does not allow as well as
//! on an exception that no longer happens.
//!
//! An import is any path into the crate in code: `use crate::…` trees (with
//! `super::`, `self::` and child modules resolved), `crate::x::y` paths in
//! expressions and types, and `ocfo::…` from the binary's `src/cli`. A path
//! is followed to the file that defines the item, through `pub use`
//! re-exports, so `crate::engine::Host` is `src/engine/host.rs`. Comments and
//! string literals are not code. Test code (`#[cfg(test)]`) follows the same
//! rules: shared test helpers such as `modules::testkit` are coupling too.
//!
//! Std only; the whole crate is read in a few milliseconds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

#[test]
fn the_crate_follows_the_layer_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let outcome = check(&root.join("src"), &root.join("docs/architecture.md")).unwrap();
    eprintln!(
        "architecture: {} files, {} imports between files; {} upward, {} circle(s) across modules, {} of them known exceptions",
        outcome.files,
        outcome.edges,
        outcome.upward,
        outcome.cycles,
        outcome.excused
    );
    assert!(
        outcome.problems.is_empty(),
        "docs/architecture.md and the code disagree:\n{}",
        outcome.problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Proof that the checker can fail: small synthetic crates in a temp folder.

const DOC: &str = "\
# Architecture

<!-- architecture-test: floors -->
| floor | name | modules |
| --- | --- | --- |
| 0 | ground | `crate`, `low` |
| 1 | middle | `mid`, `mid::deep` |
| 2 | top | `high`, `main`, `cli` |

<!-- architecture-test: exceptions -->
| kind | between | reason |
| --- | --- | --- |
";

struct Tree(PathBuf, tempfile::TempDir);

/// A crate with `files` (path under `src/`, text) and `doc` as its
/// docs/architecture.md.
fn tree(files: &[(&str, &str)], doc: &str) -> Tree {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join("src").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let doc_path = dir.path().join("architecture.md");
    std::fs::write(&doc_path, doc).unwrap();
    Tree(doc_path, dir)
}

fn run(t: &Tree) -> Outcome {
    check(&t.1.path().join("src"), &t.0).unwrap()
}

const CLEAN: &[(&str, &str)] = &[
    (
        "lib.rs",
        "pub mod low;\npub mod mid;\npub mod high;\npub fn root() {}\n",
    ),
    ("low.rs", "pub struct Low;\npub fn f() { crate::root() }\n"),
    (
        "mid/mod.rs",
        "pub mod deep;\npub use deep::Deep;\nuse crate::low::Low;\npub fn m(_: Low) {}\n",
    ),
    (
        "mid/deep.rs",
        "pub struct Deep;\nuse super::super::low;\nfn g() -> low::Low { low::Low }\n",
    ),
    (
        "high.rs",
        "use crate::{low::{self, Low}, mid::Deep};\n\
         // use crate::nowhere::Up; in a comment is not code\n\
         const S: &str = \"crate::high::x and use crate::y\";\n\
         fn h(_: Deep, _: Low) { crate::mid::m(low::Low) }\n",
    ),
    ("main.rs", "mod cli;\nfn main() { cli::run() }\n"),
    ("cli/mod.rs", "use ocfo::high;\npub fn run() {}\n"),
];

fn with(extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut files: BTreeMap<&str, String> =
        CLEAN.iter().map(|(p, t)| (*p, t.to_string())).collect();
    for (p, t) in extra {
        let key = CLEAN.iter().find(|(c, _)| c == p).map(|(c, _)| *c);
        match key {
            Some(k) => {
                files.get_mut(k).unwrap().push_str(t);
            }
            None => panic!("{p} is not in CLEAN"),
        }
    }
    files.into_iter().collect()
}

fn tree_of(files: &[(&'static str, String)], doc: &str) -> Tree {
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    tree(&refs, doc)
}

#[test]
fn a_clean_crate_passes() {
    let o = run(&tree(CLEAN, DOC));
    assert!(o.problems.is_empty(), "{:#?}", o.problems);
    // lib→low? no: low→lib, mid→low, mid→deep (re-export), deep→low,
    // high→low, high→deep (through the re-export), high→mid, main→cli,
    // cli→high.
    assert_eq!(o.edges, 9, "{:#?}", o.problems);
}

#[test]
fn an_upward_import_fails() {
    let files = with(&[("low.rs", "use crate::high;\n")]);
    let o = run(&tree_of(&files, DOC));
    assert_eq!(o.upward, 1);
    assert!(
        o.problems[0].contains("low.rs:3")
            && o.problems[0].contains("crate::high")
            && o.problems[0].contains("high.rs (high, floor 2)"),
        "{:#?}",
        o.problems
    );
}

#[test]
fn an_upward_path_in_an_expression_fails_and_so_does_a_re_export() {
    let files = with(&[("low.rs", "fn up() { let _ = crate::mid::Deep; }\n")]);
    let o = run(&tree_of(&files, DOC));
    assert_eq!(o.upward, 1, "{:#?}", o.problems);
    // Found through `pub use deep::Deep` in mid/mod.rs.
    assert!(o.problems[0].contains("mid/deep.rs"), "{:#?}", o.problems);
}

#[test]
fn super_paths_and_inline_modules_are_resolved() {
    // `super::super` from inside `mod tests` of deep.rs is `mid`: same floor.
    let files = with(&[(
        "mid/deep.rs",
        "#[cfg(test)]\nmod tests {\n    use super::super::m;\n    use super::Deep;\n}\n",
    )]);
    let o = run(&tree_of(&files, DOC));
    assert!(o.problems.is_empty(), "{:#?}", o.problems);
    // Going one level further up from the low floor is caught.
    let files = with(&[("low.rs", "mod tests {\n    use super::super::high::*;\n}\n")]);
    let o = run(&tree_of(&files, DOC));
    assert_eq!(o.upward, 1, "{:#?}", o.problems);
}

#[test]
fn a_circle_across_modules_fails_even_on_one_floor() {
    let doc = "\
<!-- architecture-test: floors -->
| floor | name | modules |
| --- | --- | --- |
| 0 | ground | `crate` |
| 1 | top | `high`, `side` |

<!-- architecture-test: exceptions -->
| kind | between | reason |
| --- | --- | --- |
";
    let files = [
        ("lib.rs", "pub mod high;\npub mod side;\n".to_string()),
        ("high.rs", "pub fn a() { crate::side::b() }\n".to_string()),
        ("side.rs", "pub fn b() { crate::high::a() }\n".to_string()),
    ];
    let o = run(&tree_of(&files, doc));
    assert_eq!((o.upward, o.cycles), (0, 1), "{:#?}", o.problems);
    assert!(o.problems[0].contains("high, side"), "{:#?}", o.problems);
    // Named in the doc with a reason, it is allowed; the doc stays the list.
    let allowed = format!("{doc}| cycle | `high`, `side` | being untangled |\n");
    let o = run(&tree_of(&files, &allowed));
    assert!(o.problems.is_empty(), "{:#?}", o.problems);
    assert_eq!(o.excused, 1);
}

#[test]
fn an_exception_that_no_longer_happens_fails() {
    let doc = format!("{DOC}| upward | `low.rs`, `high.rs` | on its way out |\n");
    let o = run(&tree(CLEAN, &doc));
    assert_eq!(o.problems.len(), 1, "{:#?}", o.problems);
    assert!(o.problems[0].contains("no longer"), "{:#?}", o.problems);
    // …and while it happens, it is allowed (with the circle it closes).
    let files = with(&[("low.rs", "use crate::high;\n")]);
    let doc = format!("{doc}| cycle | `low`, `mid`, `high` | the same debt |\n");
    let o = run(&tree_of(&files, &doc));
    assert!(o.problems.is_empty(), "{:#?}", o.problems);
}

#[test]
fn a_module_missing_from_the_table_fails() {
    let files = [
        ("lib.rs", "pub mod low;\npub mod stray;\n".to_string()),
        ("low.rs", String::new()),
        ("stray.rs", String::new()),
    ];
    let doc = DOC.replace("`mid`, `mid::deep`", "`low`");
    let o = run(&tree_of(&files, &doc));
    assert!(
        o.problems.iter().any(|p| p.contains("stray.rs")),
        "{:#?}",
        o.problems
    );
    // And a table entry that names no module.
    assert!(
        o.problems.iter().any(|p| p.contains("`high`")),
        "{:#?}",
        o.problems
    );
}

#[test]
fn strings_chars_and_lifetimes_do_not_confuse_the_reader() {
    let files = with(&[(
        "low.rs",
        "fn s<'a>(x: &'a str) -> char { let _ = r#\"crate::high \"quoted\"\"#; let _ = '\"'; let _ = b\"crate::high\"; 'c' }\n\
         /* crate::high /* nested */ crate::high */\n",
    )]);
    let o = run(&tree_of(&files, DOC));
    assert!(o.problems.is_empty(), "{:#?}", o.problems);
}

// ---------------------------------------------------------------------------
// The checker.

#[derive(Debug, Default)]
struct Outcome {
    files: usize,
    edges: usize,
    upward: usize,
    cycles: usize,
    excused: usize,
    /// Everything the doc does not allow, one line each.
    problems: Vec<String>,
}

struct Floor {
    number: u32,
    modules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Exception {
    /// `from.rs` imports from `to.rs` on a higher floor (paths under `src/`).
    Upward(String, String),
    /// A circle through these top-level modules.
    Cycle(Vec<String>),
}

struct Doc {
    floors: Vec<Floor>,
    exceptions: Vec<Exception>,
}

/// The rows of the markdown table right after `<!-- architecture-test: NAME -->`.
fn table_rows(doc: &str, name: &str) -> Result<Vec<Vec<String>>, String> {
    let marker = format!("<!-- architecture-test: {name} -->");
    let start = doc
        .find(&marker)
        .ok_or_else(|| format!("no `{marker}` in the doc"))?;
    let rows = doc[start + marker.len()..]
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            let l = l.trim().trim_start_matches('|').trim_end_matches('|');
            l.split('|').map(|c| c.trim().to_string()).collect()
        })
        .collect();
    Ok(rows)
}

/// The backticked words of a cell.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn parse_doc(doc: &str) -> Result<Doc, String> {
    let mut floors = Vec::new();
    for row in table_rows(doc, "floors")? {
        let number = row[0]
            .parse()
            .map_err(|_| format!("floor `{}` is not a number", row[0]))?;
        let modules = ticked(row.get(2).map(String::as_str).unwrap_or(""));
        floors.push(Floor { number, modules });
    }
    let mut exceptions = Vec::new();
    for row in table_rows(doc, "exceptions")? {
        let between = ticked(row.get(1).map(String::as_str).unwrap_or(""));
        let reason = row.get(2).map(String::as_str).unwrap_or("");
        if reason.is_empty() {
            return Err(format!("the exception {between:?} gives no reason"));
        }
        exceptions.push(match (row[0].as_str(), between.as_slice()) {
            ("upward", [from, to]) => Exception::Upward(from.clone(), to.clone()),
            ("cycle", units) if units.len() >= 2 => {
                let mut u = units.to_vec();
                u.sort();
                Exception::Cycle(u)
            }
            _ => return Err(format!("cannot read the exception row {row:?}")),
        });
    }
    Ok(Doc { floors, exceptions })
}

/// Source text with comments removed and string and character literals
/// emptied; line breaks are kept so lines still count.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let newlines = |s: &[char]| "\n".repeat(s.iter().filter(|&&x| x == '\n').count());
    let ident = |x: char| x.is_alphanumeric() || x == '_';
    while i < c.len() {
        let at = |k: usize| c.get(i + k).copied().unwrap_or('\0');
        if at(0) == '/' && at(1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(0) == '/' && at(1) == '*' {
            let (start, mut depth) = (i, 0);
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push_str(&newlines(&c[start..i.min(c.len())]));
        } else if (at(0) == 'r' || (at(0) == 'b' && at(1) == 'r'))
            && (i == 0 || !ident(c[i - 1]))
            && {
                let k = if at(0) == 'b' { 2 } else { 1 };
                let mut h = k;
                while at(h) == '#' {
                    h += 1;
                }
                at(h) == '"'
            }
        {
            let start = i;
            i += if at(0) == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while c[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1; // the opening quote
            loop {
                if i >= c.len() {
                    break;
                }
                if c[i] == '"' && (1..=hashes).all(|h| c.get(i + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
            out.push_str(&newlines(&c[start..i.min(c.len())]));
        } else if at(0) == '"' {
            let start = i;
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
            out.push_str(&newlines(&c[start..i.min(c.len())]));
        } else if at(0) == '\'' {
            // A char literal ('x', '\n', '\u{1b}', '"') or a lifetime ('a).
            if at(1) == '\\' {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if at(2) == '\'' {
                i += 3;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = code.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let x = c[i];
        if x == '\n' {
            line += 1;
            i += 1;
        } else if x.is_whitespace() || x == '$' {
            // `$crate` in a macro is `crate`.
            i += 1;
        } else if x.is_alphabetic() || x == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if x.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if x == ':' && c.get(i + 1) == Some(&':') {
            out.push((Tok::Sep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(x), line));
            i += 1;
        }
    }
    out
}

fn is_ident(t: Option<&(Tok, usize)>, word: &str) -> bool {
    matches!(t, Some((Tok::Ident(s), _)) if s == word)
}

fn is_punct(t: Option<&(Tok, usize)>, p: char) -> bool {
    matches!(t, Some((Tok::Punct(x), _)) if *x == p)
}

/// One path of a `use` tree.
struct UsePath {
    segs: Vec<String>,
    /// Ends in `*`.
    glob: bool,
    /// The name it is known by here (`as`, or its last segment).
    name: Option<String>,
}

/// The paths of a `use` tree starting at `toks[*i]`; stops after the tree
/// (at `;`, `,` or `}`).
fn use_tree(toks: &[(Tok, usize)], i: &mut usize, prefix: Vec<String>, out: &mut Vec<UsePath>) {
    let mut segs = prefix;
    loop {
        match toks.get(*i).map(|t| &t.0) {
            Some(Tok::Sep) => *i += 1,
            Some(Tok::Ident(s)) => {
                segs.push(s.clone());
                *i += 1;
                if matches!(toks.get(*i).map(|t| &t.0), Some(Tok::Sep)) {
                    *i += 1;
                    continue;
                }
                if segs.len() > 1 && segs.last().map(String::as_str) == Some("self") {
                    segs.pop();
                }
                let mut name = segs.last().cloned();
                if is_ident(toks.get(*i), "as") {
                    if let Some((Tok::Ident(alias), _)) = toks.get(*i + 1) {
                        name = Some(alias.clone());
                    }
                    *i += 2;
                }
                out.push(UsePath {
                    segs,
                    glob: false,
                    name,
                });
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match toks.get(*i).map(|t| &t.0) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        _ => {
                            let before = *i;
                            use_tree(toks, i, segs.clone(), out);
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push(UsePath {
                    segs,
                    glob: true,
                    name: None,
                });
                return;
            }
            _ => return,
        }
    }
}

/// One file of the crate as the checker sees it.
struct File {
    /// Under `src/`, with `/`.
    rel: String,
    /// The module path; the binary's begin with `#bin`.
    module: Vec<String>,
    /// The path the layer table names it by (`crate` for lib.rs, `main`).
    table_path: Vec<String>,
    toks: Vec<(Tok, usize)>,
}

/// A path into the crate written in a file.
struct Ref {
    /// Absolute: from the crate root (the binary's begin with `#bin`).
    path: Vec<String>,
    line: usize,
    /// As written.
    text: String,
    /// For a `pub use`: the name it exports (`None` for a glob).
    export: Option<Option<String>>,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// `mod NAME;` declarations at the top of a file's tokens.
fn declared_mods(toks: &[(Tok, usize)]) -> Vec<String> {
    toks.windows(3)
        .filter_map(|w| match (&w[0].0, &w[1].0, &w[2].0) {
            (Tok::Ident(m), Tok::Ident(name), Tok::Punct(';')) if m == "mod" => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn load_files(src: &Path) -> Result<Vec<File>, String> {
    let mut paths = Vec::new();
    rs_files(src, &mut paths)?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    // The binary's own modules: what src/main.rs declares.
    let bin_mods = match src.join("main.rs").exists() {
        true => declared_mods(&tokens(&strip(&read(&src.join("main.rs"))?))),
        false => Vec::new(),
    };
    let mut files = Vec::new();
    for p in paths {
        let rel = p
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let mut parts: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_string)
            .collect();
        let bin = rel == "main.rs" || bin_mods.contains(&parts[0]);
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) && (parts.len() > 1 || rel == "lib.rs" || rel == "main.rs")
        {
            parts.pop();
        }
        let table_path = match rel.as_str() {
            "lib.rs" => vec!["crate".to_string()],
            "main.rs" => vec!["main".to_string()],
            _ => parts.clone(),
        };
        let module = if bin {
            std::iter::once("#bin".to_string()).chain(parts).collect()
        } else {
            parts
        };
        files.push(File {
            rel,
            module,
            table_path,
            toks: tokens(&strip(&read(&p)?)),
        });
    }
    Ok(files)
}

/// Every path into the crate that `f` writes, made absolute.
fn refs_of(f: &File, modules: &HashMap<Vec<String>, usize>) -> Vec<Ref> {
    let toks = &f.toks;
    let bin = f.module.first().map(String::as_str) == Some("#bin");
    let root: Vec<String> = if bin {
        vec!["#bin".to_string()]
    } else {
        Vec::new()
    };
    // Inline modules (`mod tests { … }`): their names and brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let cur: Vec<String> = f
            .module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(n, _)| n.clone()))
            .collect();
        let absolute = |segs: &[String]| -> Option<Vec<String>> {
            let first = segs.first()?.as_str();
            match first {
                "crate" => Some(root.iter().chain(&segs[1..]).cloned().collect()),
                "ocfo" if bin => Some(segs[1..].to_vec()),
                "super" => {
                    let mut base = cur.clone();
                    let mut k = 0;
                    while segs.get(k).map(String::as_str) == Some("super") {
                        base.pop()?;
                        k += 1;
                    }
                    Some(base.into_iter().chain(segs[k..].iter().cloned()).collect())
                }
                "self" => Some(cur.iter().chain(&segs[1..]).cloned().collect()),
                child => {
                    let mut m = cur.clone();
                    m.push(child.to_string());
                    modules
                        .contains_key(&m)
                        .then(|| cur.iter().chain(segs).cloned().collect())
                }
            }
        };
        let (tok, line) = &toks[i];
        match tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            Tok::Ident(w)
                if w == "mod" && is_punct(toks.get(i + 2), '{') && toks.get(i + 1).is_some() =>
            {
                if let Some((Tok::Ident(name), _)) = toks.get(i + 1) {
                    depth += 1;
                    inline.push((name.clone(), depth));
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(w) if w == "use" => {
                let reexport = is_ident(i.checked_sub(1).and_then(|k| toks.get(k)), "pub")
                    || (is_punct(i.checked_sub(1).and_then(|k| toks.get(k)), ')')
                        && toks[i.saturating_sub(5)..i]
                            .iter()
                            .any(|t| matches!(&t.0, Tok::Ident(s) if s == "pub")));
                let mut j = i + 1;
                let mut paths = Vec::new();
                use_tree(toks, &mut j, Vec::new(), &mut paths);
                for u in paths {
                    if let Some(path) = absolute(&u.segs) {
                        out.push(Ref {
                            path,
                            line: *line,
                            text: u.segs.join("::"),
                            export: reexport.then_some(if u.glob { None } else { u.name }),
                        });
                    }
                }
                i = j.max(i + 1);
                continue;
            }
            Tok::Ident(_)
                if matches!(toks.get(i + 1), Some((Tok::Sep, _)))
                    && !matches!(
                        i.checked_sub(1).and_then(|k| toks.get(k)),
                        Some((Tok::Sep, _))
                    ) =>
            {
                let mut segs = Vec::new();
                let mut j = i;
                while let Some((Tok::Ident(s), _)) = toks.get(j) {
                    segs.push(s.clone());
                    if matches!(toks.get(j + 1), Some((Tok::Sep, _))) {
                        j += 2;
                    } else {
                        j += 1;
                        break;
                    }
                }
                if let Some(path) = absolute(&segs) {
                    out.push(Ref {
                        path,
                        line: *line,
                        text: segs.join("::"),
                        export: None,
                    });
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether `f` defines an item named `name` at any depth (close enough for
/// following a glob re-export).
fn defines(f: &File, name: &str) -> bool {
    const ITEMS: &[&str] = &[
        "fn", "struct", "enum", "trait", "type", "const", "static", "mod", "union",
    ];
    f.toks.windows(2).any(|w| match (&w[0].0, &w[1].0) {
        (Tok::Ident(k), Tok::Ident(n)) => n == name && ITEMS.contains(&k.as_str()),
        _ => false,
    }) || f.toks.windows(3).any(|w| {
        matches!((&w[0].0, &w[1].0, &w[2].0),
            (Tok::Ident(k), Tok::Punct('!'), Tok::Ident(n)) if k == "macro_rules" && n == name)
    })
}

struct Crate {
    files: Vec<File>,
    modules: HashMap<Vec<String>, usize>,
    /// Per file: re-exported name → absolute path, and glob re-exports.
    named: Vec<HashMap<String, Vec<String>>>,
    globs: Vec<Vec<Vec<String>>>,
}

impl Crate {
    /// The file that defines what `path` names, following re-exports.
    fn resolve(&self, path: &[String], hops: usize) -> Option<usize> {
        let bin = path.first().map(String::as_str) == Some("#bin");
        let mut k = usize::from(bin);
        let mut at = *self.modules.get(&path[..k])?;
        while k < path.len() {
            match self.modules.get(&path[..=k]) {
                Some(&m) => {
                    at = m;
                    k += 1;
                }
                None => break,
            }
        }
        let rest = &path[k..];
        let Some(name) = rest.first() else {
            return Some(at);
        };
        if hops > 8 {
            return Some(at);
        }
        if let Some(target) = self.named[at].get(name) {
            let full: Vec<String> = target.iter().chain(&rest[1..]).cloned().collect();
            return self.resolve(&full, hops + 1).or(Some(at));
        }
        for g in &self.globs[at] {
            if let Some(&m) = self.modules.get(g) {
                if defines(&self.files[m], name) || self.named[m].contains_key(name) {
                    let full: Vec<String> = g.iter().chain(rest).cloned().collect();
                    return self.resolve(&full, hops + 1).or(Some(at));
                }
            }
        }
        Some(at)
    }
}

fn check(src: &Path, doc_path: &Path) -> Result<Outcome, String> {
    let doc_text =
        std::fs::read_to_string(doc_path).map_err(|e| format!("{}: {e}", doc_path.display()))?;
    let doc = parse_doc(&doc_text)?;
    let files = load_files(src)?;
    let modules: HashMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let refs: Vec<Vec<Ref>> = files.iter().map(|f| refs_of(f, &modules)).collect();
    let mut named = vec![HashMap::new(); files.len()];
    let mut globs = vec![Vec::new(); files.len()];
    for (i, rs) in refs.iter().enumerate() {
        for r in rs {
            match &r.export {
                Some(None) => globs[i].push(r.path.clone()),
                Some(Some(name)) => {
                    named[i].insert(name.clone(), r.path.clone());
                }
                None => {}
            }
        }
    }
    let krate = Crate {
        files,
        modules,
        named,
        globs,
    };
    let files = &krate.files;
    let mut outcome = Outcome {
        files: files.len(),
        ..Outcome::default()
    };

    // Each file's floor: the longest table entry its module path begins with.
    let mut entry_used: BTreeMap<String, bool> = BTreeMap::new();
    let mut floor_of = Vec::new();
    for f in files {
        let mut best: Option<(usize, u32, &str)> = None;
        for fl in &doc.floors {
            for m in &fl.modules {
                let segs: Vec<&str> = m.split("::").collect();
                let matches = segs.len() <= f.table_path.len()
                    && segs.iter().zip(&f.table_path).all(|(a, b)| a == b);
                entry_used.entry(m.clone()).or_insert(false);
                if matches && best.is_none_or(|(len, _, _)| segs.len() > len) {
                    best = Some((segs.len(), fl.number, m));
                }
            }
        }
        match best {
            Some((_, n, m)) => {
                entry_used.insert(m.to_string(), true);
                floor_of.push(Some((n, m.to_string())));
            }
            None => {
                outcome.problems.push(format!(
                    "src/{} (module {}) is in no floor of the layer table",
                    f.rel,
                    f.table_path.join("::")
                ));
                floor_of.push(None);
            }
        }
    }
    for (m, used) in &entry_used {
        if !used {
            outcome.problems.push(format!(
                "the layer table names `{m}`, which is no module of the crate"
            ));
        }
    }

    // The import graph: file → file, with the first place each is written.
    let mut edges: BTreeMap<(usize, usize), (usize, String)> = BTreeMap::new();
    for (from, rs) in refs.iter().enumerate() {
        for r in rs {
            if let Some(to) = krate.resolve(&r.path, 0) {
                if to != from {
                    edges
                        .entry((from, to))
                        .or_insert_with(|| (r.line, r.text.clone()));
                }
            }
        }
    }
    outcome.edges = edges.len();
    let unit = |i: usize| files[i].table_path[0].clone();

    let mut found: BTreeMap<Exception, String> = BTreeMap::new();
    for (&(from, to), (line, text)) in &edges {
        if let (Some((a, am)), Some((b, bm))) = (&floor_of[from], &floor_of[to]) {
            if a < b {
                found.insert(
                    Exception::Upward(files[from].rel.clone(), files[to].rel.clone()),
                    format!(
                        "upward: src/{}:{line} ({am}, floor {a}) uses {text}, which is src/{} ({bm}, floor {b})",
                        files[from].rel, files[to].rel
                    ),
                );
            }
        }
    }
    for comp in strongly_connected(files.len(), edges.keys().copied()) {
        let units: BTreeSet<String> = comp.iter().map(|&i| unit(i)).collect();
        if units.len() < 2 {
            continue;
        }
        let crossing: Vec<String> = edges
            .iter()
            .filter(|((a, b), _)| comp.contains(a) && comp.contains(b) && unit(*a) != unit(*b))
            .map(|((a, b), (line, text))| {
                format!(
                    "src/{}:{line} {text} → src/{}",
                    files[*a].rel, files[*b].rel
                )
            })
            .collect();
        let units: Vec<String> = units.into_iter().collect();
        found.insert(
            Exception::Cycle(units.clone()),
            format!(
                "circle through {} ({} files); its imports across modules:\n    {}",
                units.join(", "),
                comp.len(),
                crossing.join("\n    ")
            ),
        );
    }
    for (e, message) in &found {
        match e {
            Exception::Upward(..) => outcome.upward += 1,
            Exception::Cycle(..) => outcome.cycles += 1,
        }
        if doc.exceptions.contains(e) {
            outcome.excused += 1;
        } else {
            outcome.problems.push(message.clone());
        }
    }
    for e in &doc.exceptions {
        if !found.contains_key(e) {
            outcome.problems.push(format!(
                "the exception {e:?} no longer happens: remove it from the doc"
            ));
        }
    }
    Ok(outcome)
}

/// Tarjan's strongly connected components (iterative), those of 2+ nodes.
fn strongly_connected(n: usize, edges: impl Iterator<Item = (usize, usize)>) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    for (a, b) in edges {
        adj[a].push(b);
    }
    let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
    let (mut on_stack, mut stack, mut next, mut out) = (vec![false; n], Vec::new(), 0, Vec::new());
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0)];
        while let Some((v, k)) = work.pop() {
            if k == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adj[v].get(k) {
                work.push((v, k + 1));
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    out.push(comp);
                }
            }
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
        }
    }
    out
}
