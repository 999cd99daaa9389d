//! Which Loki endpoints a line goes to: client names resolved, when the config compiles, to a mask
//! with bit i for endpoint i (`client`, then `clients[0]`, ...: the order of the batcher's lanes).
//! A line without a mask goes to every endpoint.

/// Most endpoints (`client` and `clients` together): one bit of a `u64` mask each.
pub const MAX_ENDPOINTS: usize = 64;

/// The endpoints' names, in the batcher's order (None: a client without a `name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    names: Vec<Option<String>>,
}

/// What a target's stages need to route lines: the endpoints, and where the target's own lines go.
#[derive(Debug, Clone, Copy)]
pub struct Routes<'a> {
    pub endpoints: &'a Endpoints,
    /// The target's `clients` (None: every endpoint): where a branch that names none sends lines.
    pub target: Option<u64>,
}

impl Endpoints {
    /// The endpoints of `places` (each client's config key and `name`, in order), checked:
    /// names unique and not empty, at most [`MAX_ENDPOINTS`].
    pub fn new(places: impl IntoIterator<Item = (String, Option<String>)>) -> Result<Endpoints, String> {
        let mut names: Vec<Option<String>> = Vec::new();
        for (key, name) in places {
            if names.len() == MAX_ENDPOINTS {
                return Err(format!(
                    "{key}: more than {MAX_ENDPOINTS} endpoints (`client` and `clients` together); merge some"
                ));
            }
            match name.as_deref() {
                Some("") => return Err(format!("{key}.name: empty; give a name or leave `name` out")),
                Some(n) if names.iter().any(|m| m.as_deref() == Some(n)) => {
                    return Err(format!(
                        "{key}.name: `{n}` names another client too; give each client its own name"
                    ))
                }
                _ => names.push(name),
            }
        }
        Ok(Endpoints { names })
    }

    /// The mask of the endpoints named `clients` (None when the list is empty: every endpoint).
    /// `key` is the config path of the list, for errors.
    pub fn mask(&self, clients: &[String], key: &str) -> Result<Option<u64>, String> {
        if clients.is_empty() {
            return Ok(None);
        }
        let mut mask = 0u64;
        for (j, name) in clients.iter().enumerate() {
            let Some(i) = self.names.iter().position(|n| n.as_deref() == Some(name.as_str())) else {
                return Err(format!("{key}[{j}]: no client is named `{name}`; {}", self.known()));
            };
            mask |= 1 << i;
        }
        Ok(Some(mask))
    }

    /// The routes of a target whose own lines go to `target`.
    pub fn routes(&self, target: Option<u64>) -> Routes<'_> {
        Routes {
            endpoints: self,
            target,
        }
    }

    /// The names there are, for errors.
    fn known(&self) -> String {
        let named: Vec<String> = self.names.iter().flatten().map(|n| format!("`{n}`")).collect();
        if named.is_empty() {
            "no client has a `name`: set `name` on `client` or `clients[]`".to_string()
        } else {
            format!("the named clients are {}", named.join(", "))
        }
    }

    /// The names in order (None: unnamed), which decide what the masks mean.
    pub fn names(&self) -> &[Option<String>] {
        &self.names
    }
}

impl Default for Routes<'static> {
    fn default() -> Self {
        static NONE: Endpoints = Endpoints { names: Vec::new() };
        Routes {
            endpoints: &NONE,
            target: None,
        }
    }
}

/// Whether a line with the mask `clients` goes to endpoint `i` (no mask: it goes everywhere).
pub fn goes_to(clients: Option<u64>, i: usize) -> bool {
    match clients {
        None => true,
        Some(m) => u32::try_from(i)
            .ok()
            .and_then(|i| m.checked_shr(i))
            .is_some_and(|m| m & 1 == 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(names: &[Option<&str>]) -> Result<Endpoints, String> {
        Endpoints::new(names.iter().enumerate().map(|(i, n)| {
            let key = if i == 0 {
                "client".to_string()
            } else {
                format!("clients[{}]", i - 1)
            };
            (key, n.map(str::to_string))
        }))
    }

    #[test]
    fn names_resolve_to_bits_in_endpoint_order() {
        let e = endpoints(&[Some("main"), None, Some("archive")]).unwrap();
        assert_eq!(e.mask(&[], "k").unwrap(), None);
        assert_eq!(e.mask(&["archive".into()], "k").unwrap(), Some(0b100));
        assert_eq!(e.mask(&["archive".into(), "main".into()], "k").unwrap(), Some(0b101));
        assert_eq!(
            e.mask(&["main".into(), "nope".into()], "targets[0].clients")
                .unwrap_err(),
            "targets[0].clients[1]: no client is named `nope`; the named clients are `main`, `archive`"
        );
        assert!((0..3).all(|i| goes_to(None, i)));
        assert!(goes_to(Some(0b100), 2) && !goes_to(Some(0b100), 1) && !goes_to(Some(u64::MAX), 64));
    }

    #[test]
    fn duplicate_empty_and_too_many_names_are_refused_with_their_key() {
        let err = endpoints(&[Some("a"), Some("b"), Some("a")]).unwrap_err();
        assert_eq!(
            err,
            "clients[1].name: `a` names another client too; give each client its own name"
        );
        let err = endpoints(&[Some("")]).unwrap_err();
        assert!(err.starts_with("client.name: empty"), "{err}");
        assert!(endpoints(&[None; 64]).is_ok());
        let err = endpoints(&[None; 65]).unwrap_err();
        assert!(err.starts_with("clients[63]: more than 64 endpoints"), "{err}");
        let e = endpoints(&[None, None]).unwrap();
        let err = e.mask(&["a".into()], "targets[2].clients").unwrap_err();
        assert!(
            err.ends_with("no client has a `name`: set `name` on `client` or `clients[]`"),
            "{err}"
        );
    }
}
