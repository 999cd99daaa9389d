//! Values Alloy reads when it runs: a key of a Kubernetes Secret
//! (`remote.kubernetes.secret.NAME.data["key"]`) or a file's content (`local.file.NAME.content`),
//! often through `convert.nonsensitive(...)`, which only changes how Alloy shows it.
//!
//! Where our config takes a file (a password, a bearer token, TLS PEMs) the value becomes that
//! file: the file of `local.file`, or where the Secret's key is mounted. Elsewhere (a URL, a
//! tenant, a user name) it becomes `${VAR}`, read from the environment when shipper starts, with
//! a report line saying what to set it from.

use super::super::out::SECRETS_DIR;
use super::super::report::Report;
use super::attrs::line;
use super::rewrite::{map_body, map_exprs, segments};
use super::{Body, Expr, Item};
use std::collections::BTreeMap;

enum Source {
    Secret { namespace: String, name: String },
    File { path: String },
}

/// One use of a source: which one, and which key of a Secret.
struct Use {
    label: String,
    key: String,
}

struct State<'r> {
    sources: BTreeMap<String, Source>,
    /// Variable name → the use it stands for (`label` / `key`).
    vars: BTreeMap<String, (String, String)>,
    used: BTreeMap<String, bool>,
    report: &'r mut Report,
}

/// `body` with `convert.nonsensitive` unwrapped and the Secrets and files it reads mapped.
pub(super) fn resolve(body: Body, report: &mut Report) -> Body {
    let plain = |e: &Expr| {
        map_exprs(e, &|x| match x {
            Expr::Call(f, mut args) if f.path().as_deref() == Some("convert.nonsensitive") && args.len() == 1 => {
                args.remove(0)
            }
            other => other,
        })
    };
    let mut body = map_body(&body, &plain);
    let mut st = State {
        sources: BTreeMap::new(),
        vars: BTreeMap::new(),
        used: BTreeMap::new(),
        report,
    };
    for b in body.blocks("remote.kubernetes.secret").chain(body.blocks("local.file")) {
        let Some(label) = b.label.clone() else { continue };
        let text = |k: &str| match b.body.attr(k) {
            Some(Expr::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let source = match b.name.as_str() {
            "local.file" => text("filename").map(|path| Source::File { path }),
            _ => match (text("namespace"), text("name")) {
                (Some(namespace), Some(name)) => Some(Source::Secret { namespace, name }),
                _ => None,
            },
        };
        if let Some(s) = source {
            st.sources.insert(format!("{}.{label}", b.name), s);
        }
    }
    if st.sources.is_empty() {
        return body;
    }
    for item in &mut body.items {
        if let Item::Block(b) = item {
            let what = format!("{} \"{}\"", b.name, b.label.clone().unwrap_or_default());
            let name = b.name.clone();
            walk(&mut b.body, &name, &what, &mut st);
        }
    }
    let used = st.used;
    body.items.retain(|i| match i {
        Item::Block(b) => {
            let k = format!("{}.{}", b.name, b.label.clone().unwrap_or_default());
            let gone = used.contains_key(&k);
            if gone {
                let how = if b.name == "local.file" {
                    "read where its content is used (below)"
                } else {
                    "its keys are read where they are used (below): the Secret must be given to shipper"
                };
                report.not_needed(
                    line(b.pos),
                    format!("{} \"{}\"", b.name, b.label.clone().unwrap_or_default()),
                    how,
                );
            }
            !gone
        }
        Item::Attr(_) => true,
    });
    body
}

/// The source `e` reads, if it is exactly a Secret's key or a file's content.
fn use_of(e: &Expr, sources: &BTreeMap<String, Source>) -> Option<Use> {
    let (base, key) = match e {
        Expr::Index(base, i) => match &**i {
            Expr::Str(k) => (segments(base)?, Some(k.clone())),
            _ => return None,
        },
        _ => (segments(e)?, None),
    };
    let field = |n: usize| base.get(base.len().checked_sub(n)?).cloned();
    let (label, key) = match key {
        Some(k) if field(1)? == "data" => (base[..base.len() - 1].join("."), k),
        None if field(2)? == "data" => (base[..base.len() - 2].join("."), field(1)?),
        None if field(1)? == "content" => (base[..base.len() - 1].join("."), String::new()),
        _ => return None,
    };
    match sources.get(&label)? {
        Source::Secret { .. } if !key.is_empty() => Some(Use { label, key }),
        Source::File { .. } if key.is_empty() => Some(Use { label, key }),
        _ => None,
    }
}

/// Where a use is read from, for the report.
fn described(u: &Use, sources: &BTreeMap<String, Source>) -> String {
    match sources.get(&u.label) {
        Some(Source::Secret { namespace, name }) => format!("key `{}` of Secret {namespace}/{name}", u.key),
        Some(Source::File { path }) => format!("the content of {path}"),
        None => String::new(),
    }
}

/// The file setting a value of block `block` named `attr` can be given as.
fn file_setting(block: &str, attr: &str) -> Option<(&'static str, &'static str)> {
    Some(match (block, attr) {
        ("endpoint", "bearer_token") => ("bearer_token_file", "bearer-token/token"),
        ("basic_auth", "password") => ("password_file", "basic-auth/password"),
        ("tls_config", "ca_pem") => ("ca_file", "tls/"),
        ("tls_config", "cert_pem") => ("cert_file", "tls/"),
        ("tls_config", "key_pem") => ("key_file", "tls/"),
        _ => return None,
    })
}

fn walk(body: &mut Body, block: &str, what: &str, st: &mut State) {
    for item in &mut body.items {
        match item {
            Item::Block(b) => {
                let inner = format!("{what} {}", b.name);
                let name = b.name.clone();
                walk(&mut b.body, &name, &inner, st);
            }
            Item::Attr(a) => {
                let at = line(a.pos);
                if let (Some(u), Some((setting, mount))) = (use_of(&a.value, &st.sources), file_setting(block, &a.name))
                {
                    let from = described(&u, &st.sources);
                    let (path, how) = match st.sources.get(&u.label) {
                        Some(Source::File { path }) => (path.clone(), String::new()),
                        Some(Source::Secret { namespace, name }) => {
                            let path = match mount.strip_suffix('/') {
                                Some(dir) => format!("{SECRETS_DIR}/{dir}/{}", u.key),
                                None => format!("{SECRETS_DIR}/{mount}"),
                            };
                            let chart = match setting {
                                "password_file" => format!("loki.basicAuth.secretName: {name}, passwordKey: {}", u.key),
                                "bearer_token_file" => format!("loki.bearerToken.secretName: {name}, key: {}", u.key),
                                _ => format!("loki.tls.secretName: {name}"),
                            };
                            let how = format!(
                                " — mount it there (shipper's chart does with {chart}; the Secret must be in shipper's namespace, it is in {namespace})"
                            );
                            (path, how)
                        }
                        None => continue,
                    };
                    st.used.insert(u.label.clone(), true);
                    st.report.mapped(
                        at,
                        format!("{what} {}", a.name),
                        format!("{setting}: {path}, {from}{how}"),
                    );
                    a.name = setting.to_string();
                    a.value = Expr::Str(path);
                    continue;
                }
                let mut uses: Vec<(String, String)> = Vec::new();
                let value = map_refs_and_index(&a.value, &mut |e| {
                    let u = use_of(e, &st.sources)?;
                    let var = st.var(&u);
                    uses.push((var.clone(), described(&u, &st.sources)));
                    st.used.insert(u.label, true);
                    Some(Expr::Call(
                        Box::new(Expr::Ident("sys.env".into())),
                        vec![Expr::Str(var)],
                    ))
                });
                for (var, from) in uses {
                    st.report.mapped(
                        at,
                        format!("{what} {}", a.name),
                        format!("`${{{var}}}`, read when shipper starts: set {var} from {from}"),
                    );
                }
                a.value = value;
            }
        }
    }
}

impl State<'_> {
    /// The environment variable standing for a use: its key (or file label) in capitals.
    fn var(&mut self, u: &Use) -> String {
        let base = if u.key.is_empty() {
            u.label.rsplit('.').next().unwrap_or("")
        } else {
            &u.key
        };
        let mut v = crate::convert::out::env_name(base);
        if v.is_empty() || v.starts_with(|c: char| c.is_ascii_digit()) {
            v.insert(0, '_');
        }
        let id = (u.label.clone(), u.key.clone());
        let mut name = v.clone();
        let mut n = 1;
        while let Some(other) = self.vars.get(&name) {
            if *other == id {
                return name;
            }
            n += 1;
            name = format!("{v}_{n}");
        }
        self.vars.insert(name.clone(), id);
        name
    }
}

/// `e` with each sub-expression `f` replaces replaced (tried on indexes and references first).
fn map_refs_and_index(e: &Expr, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
    if let Some(x) = f(e) {
        return x;
    }
    let mut go = |x: &Expr| Box::new(map_refs_and_index(x, f));
    match e {
        Expr::Array(items) => Expr::Array(items.iter().map(|x| *go(x)).collect()),
        Expr::Object(fields) => Expr::Object(fields.iter().map(|(k, v)| (k.clone(), *go(v))).collect()),
        Expr::Index(base, i) => Expr::Index(go(base), go(i)),
        Expr::Call(func, args) => Expr::Call(func.clone(), args.iter().map(|x| *go(x)).collect()),
        Expr::Unary(op, x) => Expr::Unary(op, go(x)),
        Expr::Binary(op, a, b) => Expr::Binary(op, go(a), go(b)),
        other => other.clone(),
    }
}
