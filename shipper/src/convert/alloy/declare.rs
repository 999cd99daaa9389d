//! Custom components (`declare "name" { argument ...; export ...; components }`) and modules
//! (`import.*`) inlined before the graph is followed: each instance `name "label" { arg = ... }`
//! becomes the declare's components, renamed `<component> "<name>.<label>/<their label>"` so
//! instances do not collide; `argument.X.value` inside is the instance's expression for `X` (or the
//! argument's `default`); `<name>.<label>.<export>` outside is the export's value. Declares nest,
//! and a declare's body may use those declared around it.

use super::super::report::Report;
use super::attrs::{err, line};
pub(super) use super::module::{Ctx, Decl, Env, Scope};
use super::rewrite::{body_refers_to, map_body, map_refs, place_at, reference, with_fields};
use super::{Block, Body, Error, Expr, Item};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

/// Instances inside instances beyond this are refused (a declare that uses itself).
const MAX_NESTING: usize = 16;

/// `body` with its custom components inlined and its modules read (`dir`: where `import.file`
/// paths start).
pub fn expand(body: &Body, dir: Option<&Path>, report: &mut Report) -> Result<Body, Error> {
    let mut ctx = Ctx {
        report,
        declared: Vec::new(),
        used: BTreeMap::new(),
    };
    let env = Env {
        prefix: None,
        args: BTreeMap::new(),
        dir,
        at: None,
    };
    let (items, _) = scope_body(&body.items, &Scope::default(), &env, &mut ctx, 0)?;
    for (origin, at, name) in std::mem::take(&mut ctx.declared) {
        let what = format!("declare \"{name}\"");
        match ctx.used.get(&origin) {
            Some(uses) => ctx.report.mapped(
                at,
                what,
                format!("its components inlined at each use ({})", uses.join(", ")),
            ),
            None => ctx.report.not_needed(at, what, "never used: nothing to convert"),
        }
    }
    Ok(Body { items })
}

fn key_parts(b: &Block) -> Vec<String> {
    let mut parts: Vec<String> = b.name.split('.').map(str::to_string).collect();
    parts.extend(b.label.clone());
    parts
}

/// What a reference of this body stands for: an argument, an instance's export, or a renamed
/// component; None: unchanged.
fn resolve(
    parts: &[String],
    renames: &BTreeMap<Vec<String>, String>,
    args: &BTreeMap<String, Expr>,
    exports: &BTreeMap<Vec<String>, Expr>,
) -> Option<Expr> {
    if parts.len() >= 3 && parts[0] == "argument" && parts[2] == "value" {
        if let Some(a) = args.get(&parts[1]) {
            return Some(with_fields(a.clone(), &parts[3..]));
        }
    }
    for i in (1..=parts.len()).rev() {
        if let Some(x) = exports.get(&parts[..i]) {
            return Some(with_fields(x.clone(), &parts[i..]));
        }
        if let Some(label) = renames.get(&parts[..i]) {
            let mut v = parts[..i - 1].to_vec();
            v.push(label.clone());
            v.extend_from_slice(&parts[i..]);
            return Some(reference(&v));
        }
    }
    None
}

/// One body (the file's, or a declare's for one instance): its components renamed and their
/// references resolved, its instances expanded. Also the values of its exports.
fn scope_body(
    items: &[Item],
    parent: &Scope,
    env: &Env,
    ctx: &mut Ctx,
    depth: usize,
) -> Result<(Vec<Item>, BTreeMap<String, Expr>), Error> {
    let mut scope = parent.clone();
    let blocks = || {
        items.iter().filter_map(|i| match i {
            Item::Block(b) => Some(b),
            Item::Attr(_) => None,
        })
    };
    for b in blocks().filter(|b| b.name == "declare") {
        let Some(label) = &b.label else {
            return Err(err(b.pos, "a declare needs a name: declare \"name\" { ... }"));
        };
        let origin = format!(
            "{}@{}:{}",
            env.dir.map(|d| d.display().to_string()).unwrap_or_default(),
            b.pos,
            label
        );
        if env.at.is_none() && !ctx.declared.iter().any(|d| d.0 == origin) {
            ctx.declared.push((origin.clone(), line(b.pos), label.clone()));
        }
        let decl = Decl {
            body: b.body.clone(),
            origin,
            foreign: env.at.is_some(),
            dir: env.dir.map(Path::to_path_buf),
        };
        scope.decls.insert(label.clone(), Rc::new(decl));
    }
    for b in blocks().filter(|b| b.name.starts_with("import.")) {
        super::import::load(b, env, &mut scope, ctx, 0);
    }
    let failed = |b: &Block| b.name.rsplit_once('.').is_some_and(|(l, _)| scope.failed.contains(l));
    let special = |b: &Block| {
        b.name == "declare" || b.name.starts_with("import.") || scope.decls.contains_key(&b.name) || failed(b)
    };
    let mut renames = BTreeMap::new();
    if let Some(p) = &env.prefix {
        for b in blocks().filter(|b| !special(b) && b.name != "argument" && b.name != "export") {
            let label = match &b.label {
                Some(l) => format!("{p}/{l}"),
                None => p.clone(),
            };
            renames.insert(key_parts(b), label);
        }
    }
    let mut out = Vec::new();
    let mut exports: BTreeMap<Vec<String>, Expr> = BTreeMap::new();
    // Instances, each after those whose exports its arguments use.
    let mut pending: Vec<&Block> = blocks().filter(|b| scope.decls.contains_key(&b.name)).collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|b| {
            !pending
                .iter()
                .any(|o| !std::ptr::eq(*o, *b) && body_refers_to(&b.body, &key_parts(o)))
        });
        let Some(i) = ready else {
            return Err(err(
                pending[0].pos,
                "these custom components use each other's exports in a cycle",
            ));
        };
        let b = pending.remove(i);
        let rw = |e: &Expr| map_refs(e, &|p| resolve(p, &renames, &env.args, &exports));
        let (items, own) = instance(b, &scope, env, &rw, ctx, depth)?;
        out.extend(items);
        for (name, value) in own {
            let mut k = key_parts(b);
            k.push(name);
            exports.insert(k, value);
        }
    }
    let rw = |e: &Expr| map_refs(e, &|p| resolve(p, &renames, &env.args, &exports));
    let mut own_exports = BTreeMap::new();
    for item in items {
        let b = match item {
            Item::Block(b) => b,
            Item::Attr(a) => {
                let mut a = a.clone();
                a.value = rw(&a.value);
                a.pos = env.at.unwrap_or(a.pos);
                out.push(Item::Attr(a));
                continue;
            }
        };
        if failed(b) && !scope.decls.contains_key(&b.name) {
            let (module, _) = b.name.rsplit_once('.').unwrap_or_default();
            ctx.report.unsupported(
                line(env.at.unwrap_or(b.pos)),
                format!("{} \"{}\"", b.name, b.label.clone().unwrap_or_default()),
                format!("its module `{module}` was not read (see its import): not converted"),
            );
            continue;
        }
        if special(b) || (env.prefix.is_some() && b.name == "argument") {
            continue;
        }
        if env.prefix.is_some() && b.name == "export" {
            if let (Some(label), Some(v)) = (&b.label, b.body.attr("value")) {
                own_exports.insert(label.clone(), rw(v));
            }
            continue;
        }
        let mut nb = Block {
            label: renames.get(&key_parts(b)).cloned().or_else(|| b.label.clone()),
            body: map_body(&b.body, &rw),
            ..b.clone()
        };
        if let Some(at) = env.at {
            nb.pos = at;
            place_at(&mut nb.body, at);
        }
        out.push(Item::Block(nb));
    }
    Ok((out, own_exports))
}

/// One instance of a custom component: the declare's body with its arguments.
fn instance(
    b: &Block,
    scope: &Scope,
    env: &Env,
    rw: &dyn Fn(&Expr) -> Expr,
    ctx: &mut Ctx,
    depth: usize,
) -> Result<(Vec<Item>, BTreeMap<String, Expr>), Error> {
    let at = env.at.unwrap_or(b.pos);
    if depth >= MAX_NESTING {
        return Err(err(
            at,
            format!("custom components nested deeper than {MAX_NESTING} (does a declare use itself?)"),
        ));
    }
    let Some(label) = &b.label else {
        return Err(err(at, format!("`{0}` needs a label: {0} \"name\" {{ ... }}", b.name)));
    };
    let Some(decl) = scope.decls.get(&b.name).cloned() else {
        return Ok((Vec::new(), BTreeMap::new()));
    };
    let what = format!("{} \"{label}\"", b.name);
    let declared: Vec<&Block> = decl.body.blocks("argument").collect();
    let mut args = BTreeMap::new();
    for item in &b.body.items {
        match item {
            Item::Attr(a) if declared.iter().any(|d| d.label.as_deref() == Some(a.name.as_str())) => {
                args.insert(a.name.clone(), rw(&a.value));
            }
            Item::Attr(a) => ctx.report.unsupported(
                line(env.at.unwrap_or(a.pos)),
                format!("{what} {}", a.name),
                format!("declare \"{}\" has no such argument: left out", b.name),
            ),
            Item::Block(inner) => ctx.report.unsupported(
                line(env.at.unwrap_or(inner.pos)),
                format!("{what} {}", inner.name),
                "a block in a custom component: its declare takes arguments (attributes) only",
            ),
        }
    }
    for d in &declared {
        let Some(name) = &d.label else { continue };
        if args.contains_key(name) {
            continue;
        }
        let optional = matches!(d.body.attr("optional"), Some(Expr::Bool(true)));
        match d.body.attr("default") {
            Some(v) => {
                args.insert(name.clone(), v.clone());
            }
            None if optional => {
                args.insert(name.clone(), Expr::Null);
            }
            None => {
                return Err(err(
                    at,
                    format!("{what} does not set `{name}`, an argument its declare requires"),
                ))
            }
        }
    }
    let prefix = match &env.prefix {
        Some(p) => format!("{p}/{}.{label}", b.name),
        None => format!("{}.{label}", b.name),
    };
    let inner = Env {
        prefix: Some(prefix.clone()),
        args,
        dir: decl.dir.as_deref(),
        at: if decl.foreign { Some(at) } else { env.at },
    };
    let done = scope_body(&decl.body.items, scope, &inner, ctx, depth + 1)?;
    let within = env.prefix.as_ref().map(|p| format!(" in {p}")).unwrap_or_default();
    ctx.used.entry(decl.origin.clone()).or_default().push(format!(
        "{what}{within}{}",
        line(at).map(|l| format!(" at line {l}")).unwrap_or_default()
    ));
    ctx.report.mapped(
        line(at),
        what,
        format!("its declare's components, each labelled \"{prefix}/<its label>\""),
    );
    Ok(done)
}
