//! Field offsets of kernel structs, read from the running kernel's BTF (`/sys/kernel/btf/vmlinux`), so
//! the BPF programs follow pointers without offsets compiled in. Only what that needs is parsed: the
//! type section's structs and unions (members, including those of anonymous inner structs/unions), and
//! the values of named enums.

const MAGIC: u16 = 0xeb9f;

// BTF kinds (include/uapi/linux/btf.h).
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

/// A struct or union member: name (string offset), type id, offset in bits.
struct Member {
    name: u32,
    ty: u32,
    bits: u32,
}

/// The type section of one BTF blob, indexed: type id → where its record starts. Members are read
/// from the blob when asked for, so a kernel's ~100,000 types cost a few hundred KiB, not tens of MiB.
pub struct Btf {
    data: Vec<u8>,
    types: std::ops::Range<usize>,
    strings: std::ops::Range<usize>,
    /// Type id → offset of its record in the type section (id 0, `void`, has none).
    at: Vec<u32>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// The running kernel's BTF.
    pub fn kernel() -> Result<Btf, String> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|e| format!("{path}: {e} (the kernel has no BTF)"))?;
        Btf::parse(data).map_err(|e| format!("{path}: {e}"))
    }

    pub fn parse(data: Vec<u8>) -> Result<Btf, String> {
        let magic = data.get(0..2).map(|m| u16::from_le_bytes([m[0], m[1]]));
        if magic != Some(MAGIC) {
            return Err("not little-endian BTF (bad magic)".into());
        }
        let field = |at| u32_at(&data, at).map(|v| v as usize).ok_or("truncated BTF header");
        let hdr_len = field(4)?;
        let types = hdr_len + field(8)?..hdr_len + field(8)? + field(12)?;
        let strings = hdr_len + field(16)?..hdr_len + field(16)? + field(20)?;
        if data.get(types.clone()).is_none() || data.get(strings.clone()).is_none() {
            return Err("section out of bounds".into());
        }
        let mut at = vec![0];
        let section = &data[types.clone()];
        let mut pos = 0;
        while pos < section.len() {
            let info = u32_at(section, pos + 4).ok_or_else(|| format!("truncated type at byte {pos}"))?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            at.push(pos as u32);
            pos += 12
                + match kind {
                    KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                    KIND_ARRAY => 12,
                    KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                    KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                    _ => 0,
                };
        }
        if pos != section.len() {
            return Err(format!("truncated type at byte {pos}"));
        }
        Ok(Btf {
            data,
            types,
            strings,
            at,
        })
    }

    fn string(&self, off: u32) -> &str {
        let strings = &self.data[self.strings.clone()];
        let rest = strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or_default()
    }

    /// The section and where type `id`'s record starts in it.
    fn locate(&self, id: u32) -> Option<(&[u8], usize)> {
        Some((&self.data[self.types.clone()], *self.at.get(id as usize)? as usize))
    }

    /// Type `id`'s name (string offset) and kind.
    fn head(&self, id: u32) -> Option<(u32, u32)> {
        let (section, pos) = self.locate(id)?;
        Some((u32_at(section, pos)?, (u32_at(section, pos + 4)? >> 24) & 0x1f))
    }

    /// The members of struct or union `id` (none for other kinds).
    fn members(&self, id: u32) -> Option<Vec<Member>> {
        let (section, pos) = self.locate(id)?;
        let info = u32_at(section, pos + 4)?;
        let (kind, vlen, kind_flag) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31 == 1);
        if !matches!(kind, KIND_STRUCT | KIND_UNION) {
            return Some(Vec::new());
        }
        (0..vlen)
            .map(|i| {
                let m = pos + 12 + i * 12;
                let offset = u32_at(section, m + 8)?;
                Some(Member {
                    name: u32_at(section, m)?,
                    ty: u32_at(section, m + 4)?,
                    // With kind_flag the high 8 bits hold a bitfield's size.
                    bits: if kind_flag { offset & 0x00ff_ffff } else { offset },
                })
            })
            .collect()
    }

    /// Byte offset of `field` in `struct name`, looking into anonymous structs and unions.
    pub fn offset(&self, name: &str, field: &str) -> Result<u64, String> {
        let id = (1..self.at.len() as u32)
            .find(|&id| {
                self.head(id)
                    .is_some_and(|(n, kind)| kind == KIND_STRUCT && n != 0 && self.string(n) == name)
            })
            .ok_or_else(|| format!("struct {name} not in the kernel's BTF"))?;
        self.find(id, field)
            .map(|bits| bits / 8)
            .ok_or_else(|| format!("struct {name} has no field {field} in the kernel's BTF"))
    }

    /// The value of `value` in `enum name`.
    pub fn enum_value(&self, name: &str, value: &str) -> Result<i64, String> {
        let id = (1..self.at.len() as u32)
            .find(|&id| {
                self.head(id).is_some_and(|(n, kind)| {
                    matches!(kind, KIND_ENUM | KIND_ENUM64) && n != 0 && self.string(n) == name
                })
            })
            .ok_or_else(|| format!("enum {name} not in the kernel's BTF"))?;
        self.enumerators(id)
            .and_then(|all| all.into_iter().find(|&(n, _)| self.string(n) == value))
            .map(|(_, v)| v)
            .ok_or_else(|| format!("enum {name} has no {value} in the kernel's BTF"))
    }

    /// (name, value) of each enumerator of enum `id`.
    fn enumerators(&self, id: u32) -> Option<Vec<(u32, i64)>> {
        let (section, pos) = self.locate(id)?;
        let info = u32_at(section, pos + 4)?;
        let (kind, vlen, signed) = ((info >> 24) & 0x1f, (info & 0xffff) as usize, info >> 31 == 1);
        (0..vlen)
            .map(|i| match kind {
                KIND_ENUM => {
                    let e = pos + 12 + i * 8;
                    let v = u32_at(section, e + 4)?;
                    Some((
                        u32_at(section, e)?,
                        if signed { i64::from(v as i32) } else { i64::from(v) },
                    ))
                }
                _ => {
                    let e = pos + 12 + i * 12;
                    let (lo, hi) = (u32_at(section, e + 4)?, u32_at(section, e + 8)?);
                    Some((u32_at(section, e)?, (u64::from(hi) << 32 | u64::from(lo)) as i64))
                }
            })
            .collect()
    }

    fn find(&self, id: u32, field: &str) -> Option<u64> {
        for Member { name, ty, bits } in self.members(id)? {
            if name != 0 && self.string(name) == field {
                return Some(u64::from(bits));
            }
            let Some((inner_name, kind)) = self.head(ty) else {
                continue;
            };
            if name == 0 && inner_name == 0 && matches!(kind, KIND_STRUCT | KIND_UNION) {
                if let Some(below) = self.find(ty, field) {
                    return Some(u64::from(bits) + below);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob with `struct outer { int a; union { int b; int c; }; }` (b and c at byte 4) and
    /// `enum e { a = 7, c = -2 }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0outer\0a\0b\0c\0int\0e\0".to_vec();
        let (outer, a, b, c, int, e) = (1u32, 7, 9, 11, 13, 17);
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend_from_slice(&w.to_le_bytes()));
        push(&[int, KIND_INT << 24, 4, 32]); // id 1: int
        push(&[0, KIND_UNION << 24 | 2, 4, b, 1, 0, c, 1, 0]); // id 2: anonymous union
        push(&[outer, KIND_STRUCT << 24 | 2, 8, a, 1, 0, 0, 2, 32]); // id 3: struct outer
        push(&[e, 1 << 31 | KIND_ENUM << 24 | 2, 4, a, 7, c, -2i32 as u32]); // id 4: signed enum e
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        data
    }

    #[test]
    fn offsets_reach_into_anonymous_unions() {
        let btf = Btf::parse(sample()).unwrap();
        assert_eq!(btf.offset("outer", "a"), Ok(0));
        assert_eq!(btf.offset("outer", "c"), Ok(4));
        assert!(btf.offset("outer", "d").unwrap_err().contains("no field d"));
        assert!(btf
            .offset("inner", "a")
            .unwrap_err()
            .contains("not in the kernel's BTF"));
        assert_eq!(btf.enum_value("e", "a"), Ok(7));
        assert_eq!(btf.enum_value("e", "c"), Ok(-2));
        assert!(btf.enum_value("e", "b").unwrap_err().contains("no b"));
        assert!(btf.enum_value("outer", "a").unwrap_err().contains("not in"));
        assert!(Btf::parse(b"garbage".to_vec()).is_err());
        assert!(Btf::parse(sample()[..20].to_vec()).is_err());
        assert!(Btf::parse(sample()[..60].to_vec()).is_err());
    }

    #[test]
    fn the_running_kernel_has_the_fields_the_programs_follow() {
        let btf = match Btf::kernel() {
            Ok(b) => b,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping: {e}");
                return;
            }
            Err(e) => panic!("CI runs on a kernel with BTF: {e}"),
        };
        for (s, f) in [
            ("task_struct", "files"),
            ("files_struct", "fdt"),
            ("fdtable", "max_fds"),
            ("fdtable", "fd"),
            ("file", "f_inode"),
            ("inode", "i_ino"),
            ("inode", "i_sb"),
            ("super_block", "s_dev"),
        ] {
            let off = btf.offset(s, f).unwrap();
            assert!(off < 16 << 10, "{s}.{f} at {off}");
        }
    }
}
