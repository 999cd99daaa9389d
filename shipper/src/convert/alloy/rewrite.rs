//! Walks over the tree that rewrite references: a path of names (`loki.process.a.receiver`) is
//! seen whole, so a renamed component or a substituted argument replaces its start and keeps the
//! rest (`.receiver`, `[0]`).

use super::{Block, Body, Expr, Item, Pos};

/// The names of a reference, `discovery.kubernetes.pods.targets` → its four parts.
pub(super) fn segments(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Ident(s) => Some(vec![s.clone()]),
        Expr::Field(base, f) => {
            let mut s = segments(base)?;
            s.push(f.clone());
            Some(s)
        }
        _ => None,
    }
}

/// `base` followed by the fields `rest`.
pub(super) fn with_fields(base: Expr, rest: &[String]) -> Expr {
    rest.iter().fold(base, |e, f| Expr::Field(Box::new(e), f.clone()))
}

/// The reference made of `parts`.
pub(super) fn reference(parts: &[String]) -> Expr {
    let (first, rest) = parts.split_first().map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
    with_fields(Expr::Ident(first.to_string()), rest)
}

/// `e` with every reference `f` gives a replacement for replaced; `f` sees the reference's names.
pub(super) fn map_refs(e: &Expr, f: &dyn Fn(&[String]) -> Option<Expr>) -> Expr {
    if let Some(parts) = segments(e) {
        return f(&parts).unwrap_or_else(|| e.clone());
    }
    let go = |x: &Expr| Box::new(map_refs(x, f));
    match e {
        Expr::Array(items) => Expr::Array(items.iter().map(|x| map_refs(x, f)).collect()),
        Expr::Object(fields) => Expr::Object(fields.iter().map(|(k, v)| (k.clone(), map_refs(v, f))).collect()),
        Expr::Field(base, name) => Expr::Field(go(base), name.clone()),
        Expr::Index(base, i) => Expr::Index(go(base), go(i)),
        // The function's name is not a reference to a component.
        Expr::Call(func, args) => Expr::Call(func.clone(), args.iter().map(|x| map_refs(x, f)).collect()),
        Expr::Unary(op, x) => Expr::Unary(op, go(x)),
        Expr::Binary(op, a, b) => Expr::Binary(op, go(a), go(b)),
        other => other.clone(),
    }
}

/// Every expression of `e` bottom-up through `f` (calls included).
pub(super) fn map_exprs(e: &Expr, f: &dyn Fn(Expr) -> Expr) -> Expr {
    let go = |x: &Expr| Box::new(map_exprs(x, f));
    let inner = match e {
        Expr::Array(items) => Expr::Array(items.iter().map(|x| map_exprs(x, f)).collect()),
        Expr::Object(fields) => Expr::Object(fields.iter().map(|(k, v)| (k.clone(), map_exprs(v, f))).collect()),
        Expr::Field(base, name) => Expr::Field(go(base), name.clone()),
        Expr::Index(base, i) => Expr::Index(go(base), go(i)),
        Expr::Call(func, args) => Expr::Call(func.clone(), args.iter().map(|x| map_exprs(x, f)).collect()),
        Expr::Unary(op, x) => Expr::Unary(op, go(x)),
        Expr::Binary(op, a, b) => Expr::Binary(op, go(a), go(b)),
        other => other.clone(),
    };
    f(inner)
}

/// Every attribute value of `body` and the blocks in it through `f`.
pub(super) fn map_body(body: &Body, f: &dyn Fn(&Expr) -> Expr) -> Body {
    Body {
        items: body
            .items
            .iter()
            .map(|i| match i {
                Item::Attr(a) => {
                    let mut a = a.clone();
                    a.value = f(&a.value);
                    Item::Attr(a)
                }
                Item::Block(b) => Item::Block(Block {
                    body: map_body(&b.body, f),
                    ..b.clone()
                }),
            })
            .collect(),
    }
}

/// `body` with every position set to `pos` (a module read from another file: the report names
/// the place that uses it).
pub(super) fn place_at(body: &mut Body, pos: Pos) {
    for i in &mut body.items {
        match i {
            Item::Attr(a) => a.pos = pos,
            Item::Block(b) => {
                b.pos = pos;
                place_at(&mut b.body, pos);
            }
        }
    }
}

/// Whether `e` refers to anything whose names start with `prefix`.
pub(super) fn refers_to(e: &Expr, prefix: &[String]) -> bool {
    let found = std::cell::Cell::new(false);
    map_refs(e, &|parts| {
        if parts.starts_with(prefix) {
            found.set(true);
        }
        None
    });
    found.get()
}

/// Whether anything in `body` refers to names starting with `prefix`.
pub(super) fn body_refers_to(body: &Body, prefix: &[String]) -> bool {
    body.items.iter().any(|i| match i {
        Item::Attr(a) => refers_to(&a.value, prefix),
        Item::Block(b) => body_refers_to(&b.body, prefix),
    })
}
