//! The arguments part of a binding's `properties_key`, computed as RabbitMQ 3.10 computes it:
//! `erlang:phash2(Args, 1 bsl 32)` of the Erlang term RabbitMQ holds for the binding's
//! arguments, as 32 big-endian bits in unpadded base64url. Clients and scripts build
//! `DELETE /api/bindings/...` paths from keys they got from RabbitMQ, so ours must be the same
//! string, not merely a stable one.
//!
//! `phash2` is Erlang's portable term hash (`make_hash2` in ERTS; the same value on every
//! architecture and release). Only the term shapes a field table becomes are modelled: atoms,
//! integers, floats, binaries, tuples and proper lists.

use base64::Engine;
use ottermq_protocol::table::{FieldTable, FieldValue};

/// An Erlang term, as far as AMQP field tables need.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term<'a> {
    Atom(&'static str),
    Int(i128),
    Float(f64),
    Bin(&'a [u8]),
    Tuple(Vec<Term<'a>>),
    List(Vec<Term<'a>>),
}

/// The term `rabbit_binary_parser` makes of a field table: a list of `{Name, Type, Value}`.
pub(crate) fn table_term(t: &FieldTable) -> Term<'_> {
    Term::List(
        t.0.iter()
            .map(|(k, v)| {
                let (ty, val) = typed(v);
                Term::Tuple(vec![Term::Bin(k.as_bytes()), Term::Atom(ty), val])
            })
            .collect(),
    )
}

/// A value's type atom and Erlang value, as `rabbit_binary_parser` decodes it (`L` is read
/// as a signed 64-bit `long`; a short string is sent as a long string).
fn typed(v: &FieldValue) -> (&'static str, Term<'_>) {
    match v {
        FieldValue::Bool(b) => ("bool", Term::Atom(if *b { "true" } else { "false" })),
        FieldValue::I8(n) => ("byte", Term::Int(i128::from(*n))),
        FieldValue::U8(n) => ("unsignedbyte", Term::Int(i128::from(*n))),
        FieldValue::I16(n) => ("short", Term::Int(i128::from(*n))),
        FieldValue::U16(n) => ("unsignedshort", Term::Int(i128::from(*n))),
        FieldValue::I32(n) => ("signedint", Term::Int(i128::from(*n))),
        FieldValue::U32(n) => ("unsignedint", Term::Int(i128::from(*n))),
        FieldValue::I64(n) => ("long", Term::Int(i128::from(*n))),
        FieldValue::U64(n) => ("long", Term::Int(i128::from(*n as i64))),
        FieldValue::F32(f) => ("float", Term::Float(f64::from(*f))),
        FieldValue::F64(f) => ("double", Term::Float(*f)),
        FieldValue::Decimal { scale, value } => (
            "decimal",
            Term::Tuple(vec![
                Term::Int(i128::from(*scale)),
                Term::Int(i128::from(*value)),
            ]),
        ),
        FieldValue::LongStr(s) => ("longstr", Term::Bin(s.as_bytes())),
        FieldValue::ShortStr(s) => ("longstr", Term::Bin(s.as_bytes())),
        FieldValue::Bytes(b) => ("binary", Term::Bin(b)),
        FieldValue::Array(items) => (
            "array",
            Term::List(
                items
                    .iter()
                    .map(|i| {
                        let (ty, val) = typed(i);
                        Term::Tuple(vec![Term::Atom(ty), val])
                    })
                    .collect(),
            ),
        ),
        FieldValue::Timestamp(t) => ("timestamp", Term::Int(i128::from(*t))),
        FieldValue::Table(t) => ("table", table_term(t)),
        FieldValue::Void => ("void", Term::Atom("undefined")),
    }
}

/// RabbitMQ's `args_hash`: the binding's arguments, sorted by name as `rabbit_binding` stores
/// them (`lists:keysort`, so stable; nested tables keep their order), hashed with `phash2`.
pub fn args_hash(args: &FieldTable) -> String {
    let mut sorted = args.clone();
    sorted.0.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let h = phash2(&table_term(&sorted));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.to_be_bytes())
}

// (HCONST * n) mod 2^32, HCONST being the golden ratio constant of Jenkins' hash.
const HCONST: u32 = 0x9e37_79b9;
const HCONST_2: u32 = 0x3c6e_f372;
const HCONST_3: u32 = 0xdaa6_6d2b;
const HCONST_4: u32 = 0x78dd_e6e4;
const HCONST_9: u32 = 0x8ff3_4781;
const HCONST_10: u32 = 0x2e2a_c13a;
const HCONST_11: u32 = 0xcc62_3af3;
const HCONST_12: u32 = 0x6a99_b4ac;
const HCONST_13: u32 = 0x08d1_2e65;
/// ERTS' tag number for `[]`, mixed in for a list's tail when something came before it.
const NIL_DEF: u32 = 0x2;
/// `phash2([])`: the value `[]` gets when nothing came before it.
const NIL_ALONE: u32 = 3_468_870_702;

/// Bob Jenkins' 96-bit mix, as ERTS applies it.
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 13);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 8);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 13);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 12);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 16);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 5);
    *a = a.wrapping_sub(*b).wrapping_sub(*c) ^ (*c >> 3);
    *b = b.wrapping_sub(*c).wrapping_sub(*a) ^ (*a << 10);
    *c = c.wrapping_sub(*a).wrapping_sub(*b) ^ (*b >> 15);
}

/// Jenkins' one-at-a-time-block hash of a byte string, seeded with `init`.
fn block_hash(k: &[u8], init: u32) -> u32 {
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let (mut a, mut b, mut c) = (HCONST, HCONST, init);
    let mut chunks = k.chunks_exact(12);
    for ch in &mut chunks {
        a = a.wrapping_add(word(&ch[0..4]));
        b = b.wrapping_add(word(&ch[4..8]));
        c = c.wrapping_add(word(&ch[8..12]));
        mix(&mut a, &mut b, &mut c);
    }
    let rest = chunks.remainder();
    c = c.wrapping_add(k.len() as u32);
    // The tail: bytes 0..4 into a, 4..8 into b, 8..11 into c above its low byte.
    for (i, &byte) in rest.iter().enumerate() {
        let v = u32::from(byte);
        match i {
            0..=3 => a = a.wrapping_add(v << (8 * i)),
            4..=7 => b = b.wrapping_add(v << (8 * (i - 4))),
            _ => c = c.wrapping_add(v << (8 * (i - 7))),
        }
    }
    mix(&mut a, &mut b, &mut c);
    c
}

/// The hash ERTS keeps for an atom (`hashpjw` over its name).
fn atom_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    for &v in name.as_bytes() {
        h = (h << 4).wrapping_add(u32::from(v));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
            h ^= g;
        }
    }
    h
}

/// `erlang:phash2(T)` (equal to `erlang:phash2(T, 1 bsl 32)`).
pub(crate) fn phash2(t: &Term<'_>) -> u32 {
    let mut h = Hash2(0);
    h.term(t);
    h.0
}

/// The running hash of `make_hash2`: each term mixes into the value left by the previous
/// one, depth first, in order.
struct Hash2(u32);

impl Hash2 {
    fn two(&mut self, x: u32, y: u32, konst: u32) {
        let mut a = konst.wrapping_add(x);
        let mut b = konst.wrapping_add(y);
        mix(&mut a, &mut b, &mut self.0);
    }

    fn one(&mut self, x: u32, konst: u32) {
        self.two(x, 0, konst);
    }

    fn term(&mut self, t: &Term<'_>) {
        match t {
            Term::Atom(name) => {
                let a = atom_hash(name);
                if self.0 == 0 {
                    self.0 = a;
                } else {
                    self.one(a, HCONST_3);
                }
            }
            Term::Int(x) => self.int(*x),
            Term::Float(f) => {
                // -0.0 hashes as 0.0.
                let bits = if *f == 0.0 { 0 } else { f.to_bits() };
                self.two((bits >> 32) as u32, bits as u32, HCONST_12);
            }
            Term::Bin(b) => {
                let seed = HCONST_13.wrapping_add(self.0);
                self.0 = if b.is_empty() {
                    seed
                } else {
                    block_hash(b, seed)
                };
            }
            Term::Tuple(items) => {
                self.one(items.len() as u32, HCONST_9);
                for i in items {
                    self.term(i);
                }
            }
            Term::List(items) => self.list(items),
        }
    }

    /// Integers in 28 signed bits are hashed as such; others as a bignum: sign-dependent
    /// constant, magnitude in 64-bit digits, each as its low and high halves.
    fn int(&mut self, x: i128) {
        if (-(1 << 27)..(1 << 27)).contains(&x) {
            let y = x as i32;
            if y < 0 {
                self.one(y.wrapping_neg() as u32, HCONST);
            }
            self.one(y as u32, HCONST);
            return;
        }
        let konst = if x < 0 { HCONST_10 } else { HCONST_11 };
        let mut mag = x.unsigned_abs();
        loop {
            let digit = mag as u64;
            self.two(digit as u32, (digit >> 32) as u32, konst);
            mag >>= 64;
            if mag == 0 {
                break;
            }
        }
    }

    /// A proper list: runs of byte-sized integers packed four to a word, other elements
    /// hashed in turn, then the `[]` tail.
    fn list(&mut self, items: &[Term<'_>]) {
        let mut packed: u32 = 0;
        let mut count = 0;
        for i in items {
            match i {
                Term::Int(b @ 0..=255) => {
                    packed = (packed << 8).wrapping_add(*b as u32);
                    count += 1;
                    if count == 4 {
                        self.one(packed, HCONST_4);
                        packed = 0;
                        count = 0;
                    }
                }
                other => {
                    if count > 0 {
                        self.one(packed, HCONST_4);
                        packed = 0;
                        count = 0;
                    }
                    self.term(other);
                }
            }
        }
        if count > 0 {
            self.one(packed, HCONST_4);
        }
        if self.0 == 0 {
            self.0 = NIL_ALONE;
        } else {
            self.one(NIL_DEF, HCONST_2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitive_terms_hash_as_erlang_does() {
        let cases: Vec<(Term, u32)> = vec![
            (Term::List(vec![]), 3468870702),
            (Term::Tuple(vec![Term::List(vec![])]), 1775079505),
            (
                Term::Tuple(vec![Term::Atom("a"), Term::List(vec![])]),
                475258904,
            ),
            (Term::Atom("a"), 97),
            (Term::Atom("longstr"), 56945346),
            (Term::Atom("true"), 506293),
            (Term::Int(0), 3175731469),
            (Term::Int(1), 539485162),
            (Term::Int(-1), 1117813597),
            (Term::Int(134217727), 4273352567),
            (Term::Int(134217728), 2562491755),
            (Term::Int(-134217728), 874979335),
            (Term::Int(-134217729), 1418916782),
            (Term::Int(1 << 63), 710941318),
            (Term::Int(-(1 << 63)), 1736826119),
            (Term::Int(u64::MAX as i128), 321870806),
            (Term::Float(1.5), 2023646235),
            (Term::Float(-0.0), 423528920),
            (Term::Float(0.0), 423528920),
            (Term::Bin(b""), 147926629),
            (Term::Bin(b"a"), 1589197455),
            (Term::Bin(b"hello world!x"), 1871732765),
            (Term::Tuple(vec![]), 221703996),
            (Term::Tuple(vec![Term::Int(1), Term::Int(2)]), 4118095950),
            (
                Term::List(vec![Term::Tuple(vec![Term::Atom("a"), Term::Int(1)])]),
                2209036985,
            ),
            (
                Term::List(vec![Term::Int(1), Term::Int(2), Term::Int(3)]),
                4186538188,
            ),
            (Term::List(vec![Term::Int(300)]), 3723642275),
        ];
        for (t, want) in cases {
            assert_eq!(phash2(&t), want, "{t:?}");
        }
    }
    fn t(rows: Vec<(&str, FieldValue)>) -> FieldTable {
        FieldTable(rows.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(v.into())
    }

    /// Expected keys computed by `erl` (OTP 25, the release RabbitMQ 3.10 runs on) with
    /// RabbitMQ's `pack_binding_props` steps: `lists:keysort(1, Args)`,
    /// `phash2(Sorted, 1 bsl 32)`, base64url without padding, `quote_plus`.
    #[test]
    fn properties_keys_match_rabbitmq() {
        use crate::api::objects::properties_key;
        use FieldValue::*;
        let cases: Vec<(&str, FieldTable, &str)> = vec![
            ("", t(vec![]), "~"),
            ("a.*", t(vec![]), "a.%2A"),
            ("", t(vec![("x-match", s("all"))]), "~3ujGfg"),
            (
                "k",
                t(vec![("s", s("hello world, this is longer than twelve"))]),
                "k~1GZrSg",
            ),
            (
                "k",
                t(vec![("i", I32(-5)), ("u", U32(u32::MAX))]),
                "k~WtKw3A",
            ),
            (
                "k",
                t(vec![
                    ("l", I64(i64::MIN)),
                    ("m", I64(i64::MAX)),
                    ("n", I64(134217728)),
                    ("o", I64(-134217729)),
                ]),
                "k~IKHSaQ",
            ),
            ("k", t(vec![("l", I64(-1))]), "k~_IcwaQ"),
            // RabbitMQ reads `L` as signed: u64::MAX is the long -1.
            ("k", t(vec![("l", U64(u64::MAX))]), "k~_IcwaQ"),
            (
                "k",
                t(vec![("s", I16(i16::MIN)), ("us", U16(u16::MAX))]),
                "k~HhY2gQ",
            ),
            (
                "k",
                t(vec![("b", I8(i8::MIN)), ("ub", U8(u8::MAX))]),
                "k~ICozrg",
            ),
            (
                "k",
                t(vec![("t", Bool(true)), ("f", Bool(false))]),
                "k~pkJguw",
            ),
            (
                "k",
                t(vec![("f", F32(1.5)), ("d", F64(-2.25e100))]),
                "k~hSv5gQ",
            ),
            ("k", t(vec![("z", F64(-0.0))]), "k~jKCS5w"),
            (
                "k",
                t(vec![
                    ("ts", Timestamp(u64::MAX)),
                    ("t0", Timestamp(1700000000)),
                ]),
                "k~DP2FiA",
            ),
            (
                "k",
                t(vec![(
                    "dec",
                    Decimal {
                        scale: 2,
                        value: 12345,
                    },
                )]),
                "k~5wp3HQ",
            ),
            ("k", t(vec![("v", Void)]), "k~wLtq5A"),
            (
                "k",
                t(vec![("x", Bytes(vec![0u8, 1, 2, 255].into()))]),
                "k~Ex8jug",
            ),
            // Nested tables keep their order; only the top level is sorted.
            (
                "k",
                t(vec![(
                    "t",
                    Table(t(vec![
                        ("z", s("1")),
                        ("a", I32(2)),
                        ("in", Table(t(vec![("deep", Bool(true))]))),
                    ])),
                )]),
                "k~QISHvw",
            ),
            (
                "k",
                t(vec![("e", Table(t(vec![]))), ("ea", Array(vec![]))]),
                "k~EZxmXQ",
            ),
            (
                "k",
                t(vec![(
                    "arr",
                    Array(vec![
                        s("a"),
                        I32(7),
                        I64(1 << 40),
                        Bool(false),
                        Array(vec![I8(3)]),
                        Table(t(vec![("q", Void)])),
                        F64(0.1),
                        Decimal { scale: 0, value: 1 },
                        Timestamp(5),
                        Bytes(Vec::new().into()),
                        Void,
                    ]),
                )]),
                "k~OcQwTw",
            ),
            // Top level sorted by name; the routing key is quoted.
            (
                "a b~c/\u{e9}",
                t(vec![
                    ("x-match", s("any")),
                    ("format", s("pdf")),
                    ("type", FieldValue::ShortStr("report".into())),
                ]),
                "a+b%7Ec%2F%C3%A9~Zcsvng",
            ),
            // keysort is stable: duplicate names keep their order.
            (
                "k",
                t(vec![("dup", I64(1)), ("a", I64(0)), ("dup", I64(2))]),
                "k~vegTlA",
            ),
            ("k", t(vec![("x-priority", I32(10))]), "k~KsQLsw"),
        ];
        for (rk, args, want) in cases {
            assert_eq!(properties_key(rk, &args), want, "{rk:?} {args:?}");
        }
    }
}
