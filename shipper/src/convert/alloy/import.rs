//! Modules: `import.file` (a file, or every `.alloy` file of a directory; a relative path is
//! relative to the importing file's directory) and `import.string` are read and their declares
//! made usable as `<import label>.<declare>`. `import.git` and `import.http` fetch at run time,
//! which a converted config cannot: reported. A module that cannot be read is reported, and what
//! uses it too; the rest converts.

use super::attrs::line;
use super::module::{Ctx, Decl, Env, Scope};
use super::rewrite::{map_body, map_refs, reference};
use super::{Block, Body, Expr, Item, Pos};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Modules importing modules beyond this are refused (a module importing itself).
const MAX_IMPORTS: usize = 8;

/// Reads the module of the import `b` into `scope` (or marks it failed, reported).
pub(super) fn load(b: &Block, env: &Env, scope: &mut Scope, ctx: &mut Ctx, depth: usize) {
    let pos = env.at.unwrap_or(b.pos);
    let at = line(pos);
    let Some(label) = b.label.clone() else {
        ctx.report
            .unsupported(at, b.name.clone(), "an import needs a label: not read");
        return;
    };
    let what = format!("{} \"{label}\"", b.name);
    let text_of = |name: &str| match b.body.attr(name) {
        Some(Expr::Str(s)) => Ok(s.clone()),
        Some(_) => Err(format!(
            "`{name}` is not a plain string: shipper convert reads literal modules only"
        )),
        None => Err(format!("no `{name}`")),
    };
    let read = match b.name.as_str() {
        _ if depth >= MAX_IMPORTS => Err(format!(
            "modules importing modules deeper than {MAX_IMPORTS} (does a module import itself?)"
        )),
        "import.file" => text_of("filename").and_then(|f| read_files(&f, env.dir)),
        "import.string" => text_of("content").map(|t| {
            let dir = env.dir.map(Path::to_path_buf);
            (vec![("the string".to_string(), t)], dir)
        }),
        "import.git" | "import.http" => {
            let from = text_of(if b.name == "import.git" { "repository" } else { "url" }).unwrap_or_default();
            Err(format!(
                "fetches its module from {from} when Alloy runs, which a converted config cannot: copy the module beside this file and use import.file"
            ))
        }
        other => Err(format!("`{other}` is not an import Alloy has")),
    };
    let parsed = read.and_then(|(texts, dir)| {
        let mut items = Vec::new();
        for (name, text) in texts {
            let body = super::parse(&text).map_err(|e| format!("{name}:{e}"))?;
            items.extend(body.items);
        }
        Ok((Body { items }, dir))
    });
    let (body, dir) = match parsed {
        Ok(x) => x,
        Err(why) => {
            ctx.report
                .unsupported(at, what, format!("{why}; what uses it is not converted"));
            scope.failed.insert(label);
            return;
        }
    };
    module(&body, &label, dir, pos, scope, ctx, depth);
    let names: Vec<String> = body.blocks("declare").filter_map(|d| d.label.clone()).collect();
    ctx.report.mapped(
        at,
        what,
        format!(
            "its declares ({}) inlined where used as `{label}.<declare>`",
            names.join(", ")
        ),
    );
}

/// The text of `filename` (every `.alloy` file if a directory), and the directory its own
/// imports are relative to.
#[allow(clippy::type_complexity)]
fn read_files(filename: &str, dir: Option<&Path>) -> Result<(Vec<(String, String)>, Option<PathBuf>), String> {
    let path = match dir {
        Some(d) if Path::new(filename).is_relative() => d.join(filename),
        _ => PathBuf::from(filename),
    };
    let shown = path.display().to_string();
    let cannot = |e: std::io::Error| format!("cannot read {shown}: {e}");
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
            .map_err(cannot)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "alloy"))
            .collect();
        files.sort();
        let texts = files
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .map(|t| (f.display().to_string(), t))
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((texts, Some(path)));
    }
    let text = std::fs::read_to_string(&path).map_err(cannot)?;
    let parent = path.parent().map(Path::to_path_buf);
    Ok((vec![(shown, text)], parent))
}

/// The declares of a module's `body` into `scope` as `<label>.<name>`; the module's own imports
/// as `<label>.<their label>.<name>`. Inside them, the names of the module's declares and imports
/// are given the same prefix, so they find each other wherever they are used.
#[allow(clippy::too_many_arguments)]
fn module(body: &Body, label: &str, dir: Option<PathBuf>, pos: Pos, scope: &mut Scope, ctx: &mut Ctx, depth: usize) {
    let mut own = Scope::default();
    let env = Env::module(dir.as_deref(), pos);
    for b in body.items.iter().filter_map(|i| match i {
        Item::Block(b) if b.name.starts_with("import.") => Some(b),
        _ => None,
    }) {
        load(b, &env, &mut own, ctx, depth + 1);
    }
    let locals: Vec<String> = body
        .blocks("declare")
        .filter_map(|d| d.label.clone())
        .chain(own.failed.iter().cloned())
        .chain(own.decls.keys().filter_map(|k| k.split('.').next().map(str::to_string)))
        .collect();
    for (name, d) in own.decls {
        scope.decls.insert(
            format!("{label}.{name}"),
            Rc::new(Decl {
                body: rename(&d.body, &locals, label),
                origin: d.origin.clone(),
                foreign: true,
                dir: d.dir.clone(),
            }),
        );
    }
    for name in own.failed {
        scope.failed.insert(format!("{label}.{name}"));
    }
    for item in &body.items {
        let Item::Block(b) = item else { continue };
        match (b.name.as_str(), &b.label) {
            ("declare", Some(name)) => {
                let renamed = rename(&b.body, &locals, label);
                scope.decls.insert(
                    format!("{label}.{name}"),
                    Rc::new(Decl {
                        body: renamed,
                        origin: format!("{label}.{name}@{}", b.pos),
                        foreign: true,
                        dir: dir.clone(),
                    }),
                );
            }
            (n, _) if n.starts_with("import.") => {}
            (n, l) => ctx.report.unsupported(
                line(pos),
                format!("{n} \"{}\" in module `{label}`", l.clone().unwrap_or_default()),
                "a module's components outside its declares are not converted",
            ),
        }
    }
}

/// `body` with the block names and references starting with one of `locals` given the prefix
/// `label.`, at every depth.
fn rename(body: &Body, locals: &[String], label: &str) -> Body {
    let local = |first: &str| locals.iter().any(|l| l == first);
    let refs = |e: &Expr| {
        map_refs(e, &|parts: &[String]| {
            let first = parts.first()?;
            local(first).then(|| {
                let mut v = vec![label.to_string()];
                v.extend_from_slice(parts);
                reference(&v)
            })
        })
    };
    let mut out = map_body(body, &refs);
    rename_blocks(&mut out, &|name: &str| {
        local(name.split('.').next().unwrap_or("")).then(|| format!("{label}.{name}"))
    });
    out
}

fn rename_blocks(body: &mut Body, f: &dyn Fn(&str) -> Option<String>) {
    for i in &mut body.items {
        if let Item::Block(b) = i {
            if let Some(n) = f(&b.name) {
                b.name = n;
            }
            rename_blocks(&mut b.body, f);
        }
    }
}
