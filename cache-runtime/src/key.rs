//! Key and tag templates, and how argument values are rendered into them.
//!
//! A template such as `"customer.email.{email | lower | sha256}"` is split by the macro at
//! compile time into [`Segment`]s. At run time each placeholder's value is written through
//! [`KeyArg`], passed through its [`Filter`]s and then *encoded*: every ASCII character other
//! than letters, digits, `-`, `_` and `@` is percent-encoded; non-ASCII characters are kept as
//! they are, so that keys stay readable.
//!
//! # Why two argument tuples never render the same key
//!
//! The macro accepts a template only if every placeholder is followed by the end of the
//! template or by a literal whose first character passes [`is_separator_start`]: an ASCII
//! character that is neither plain ([`is_plain`]) nor `%`.
//!
//! 1. An encoded value consists of plain bytes (ASCII letters, digits, `-`, `_`, `@`, and the
//!    bytes of non-ASCII characters, all `>= 0x80`) and escapes `%XX` (`%` and two hex
//!    digits). The encoding is injective: `%` itself is escaped, so every `%` in the output
//!    starts an escape, and everything else is copied.
//! 2. The first byte of a separator is ASCII, so it is not a byte of a multi-byte UTF-8
//!    sequence; it is not plain, and it is not `%` or a hex digit (hex digits are plain). So it
//!    never occurs inside an encoded value.
//! 3. Reading a rendered key from the left, the template's literals are fixed text, and each
//!    value ends at the first occurrence of the first byte of the separator after it (or at the
//!    end of the key, for a value that ends the template). So the key determines each encoded
//!    value, and by 1. each filtered value.
//!
//! A separator starting with a non-ASCII character (`"p.{a}·{b}"`) breaks 2., since values keep
//! `·` as it is: `("x", "y·z")` and `("x·y", "z")` would both render `p.x·y·z`. So does one
//! starting with `%` (`"q.{a}%2E{b}"`), since `%` starts every escape: `("1", "2.3")` and
//! `("1.2", "3")` would both render `q.1%2E2%2E3`. The macro rejects both.

use std::fmt::{self, Write as _};

use sha2::{Digest, Sha256};

/// Declares [`Filter`], its names ([`Filter::NAMES`], [`Filter::from_name`]) and the filters
/// by name that `#[cached]` and `#[invalidates]` expand to ([`FILTERS`]), from one list: a
/// filter is added here, and in [`Filter::apply`].
macro_rules! filters {
    ($($(#[doc = $doc:literal])* $name:ident => $variant:ident,)*) => {
        /// A transformation applied to a placeholder's value before it is encoded, written
        /// `{arg | filter}` in a template.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Filter {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Filter {
            /// The filters a template may name, as written.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The filter called `name` in a template.
            pub fn from_name(name: &str) -> Option<Filter> {
                match name {
                    $(stringify!($name) => Some(Filter::$variant),)*
                    _ => None,
                }
            }
        }

        /// Every filter, as a field named as templates write it. Not public API.
        #[doc(hidden)]
        pub struct Filters {
            $(#[doc = concat!("[`Filter::", stringify!($variant), "`].")] pub $name: Filter,)*
        }

        /// The filters by name: the macros turn `{arg | lower}` into `FILTERS.lower`, spanned
        /// on the template, so that rustc reports an unknown filter there, with the list of
        /// filters or the closest one. Not public API.
        #[doc(hidden)]
        pub const FILTERS: Filters = Filters {
            $($name: Filter::$variant,)*
        };
    };
}

filters! {
    /// Lower-cases the value (Unicode-aware).
    lower => Lower,
    /// Upper-cases the value (Unicode-aware).
    upper => Upper,
    /// Removes leading and trailing white space.
    trim => Trim,
    /// Replaces the value by the lower-case hex SHA-256 of its UTF-8 bytes, so that the raw
    /// value (an e-mail address, say) never appears in keys, logs or the CLI.
    sha256 => Sha256,
}

impl Filter {
    fn apply(self, value: &mut String) {
        match self {
            Filter::Lower => {
                if value.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) {
                    *value = value.to_lowercase();
                }
            }
            Filter::Upper => *value = value.to_uppercase(),
            Filter::Trim => {
                let trimmed = value.trim();
                if trimmed.len() != value.len() {
                    *value = trimmed.to_owned();
                }
            }
            Filter::Sha256 => {
                let digest = Sha256::digest(value.as_bytes());
                value.clear();
                for byte in digest {
                    let _ = write!(value, "{byte:02x}");
                }
            }
        }
    }
}

/// One piece of a parsed template.
#[derive(Clone, Copy, Debug)]
pub enum Segment {
    /// Text copied into the key as it is.
    Literal(&'static str),
    /// The next argument value, with its filters.
    Value(&'static [Filter]),
}

/// A template parsed at compile time by `#[cached]` or `#[invalidates]`.
#[derive(Debug)]
pub struct Template {
    /// The template as the user wrote it, for logs and errors.
    pub source: &'static str,
    /// The parsed pieces, in order.
    pub segments: &'static [Segment],
}

/// A value that can be interpolated into a key or tag template.
///
/// Implemented for every type that implements [`Display`](fmt::Display): strings, integers,
/// `bool`, `char`, UUIDs and your own ids. The written text is then filtered and encoded, so it
/// may contain any character.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be interpolated into a cache key or tag",
    label = "this value has no `Display` implementation",
    note = "implement `std::fmt::Display` for `{Self}`, or interpolate one of its fields: `{{arg.field}}`"
)]
pub trait KeyArg {
    /// Writes the raw (not yet encoded) text of the value.
    fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result;

    /// Appends the encoded text of the value to `out`. Overridden by [`Plain`] values, which
    /// skip `fmt`.
    #[doc(hidden)]
    #[inline]
    fn render(&self, out: &mut Vec<u8>) {
        let _ = self.write_raw(&mut Encoder(out));
    }
}

/// A type whose key text is written without going through `fmt`: strings, integers, `bool`
/// and `char`. The text is exactly its [`Display`](fmt::Display) text. The expansion picks
/// this path by autoref (`autoref::KeyArgProbe`) when the argument's type implements it, and
/// [`KeyArg`]'s `Display` path for any other type.
#[doc(hidden)]
pub trait PlainKey {
    /// Appends the encoded text to `out`.
    fn render(&self, out: &mut Vec<u8>);
    /// Writes the raw text, as `Display` does.
    fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result;
}

macro_rules! plain_key_as_str {
    ($($ty:ty),*) => {$(
        impl PlainKey for $ty {
            #[inline]
            fn render(&self, out: &mut Vec<u8>) {
                encode_into(self, out);
            }
            fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
                out.write_str(self)
            }
        }
    )*};
}
plain_key_as_str!(
    str,
    String,
    Box<str>,
    std::sync::Arc<str>,
    std::borrow::Cow<'_, str>
);

impl<T: PlainKey + ?Sized> PlainKey for &T {
    #[inline]
    fn render(&self, out: &mut Vec<u8>) {
        (**self).render(out);
    }
    fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        (**self).write_raw(out)
    }
}

/// Appends the decimal digits of `n`, after a `-` when `negative`: digits and `-` are plain.
#[inline]
fn render_integer(negative: bool, mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

macro_rules! plain_key_unsigned {
    ($($ty:ty),*) => {$(
        impl PlainKey for $ty {
            #[inline]
            fn render(&self, out: &mut Vec<u8>) {
                render_integer(false, *self as u64, out);
            }
            fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
                write!(out, "{self}")
            }
        }
    )*};
}
plain_key_unsigned!(u8, u16, u32, u64, usize);

macro_rules! plain_key_signed {
    ($($ty:ty),*) => {$(
        impl PlainKey for $ty {
            #[inline]
            fn render(&self, out: &mut Vec<u8>) {
                render_integer(*self < 0, (*self as i64).unsigned_abs(), out);
            }
            fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
                write!(out, "{self}")
            }
        }
    )*};
}
plain_key_signed!(i8, i16, i32, i64, isize);

impl PlainKey for bool {
    #[inline]
    fn render(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
    fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(out, "{self}")
    }
}

impl PlainKey for char {
    #[inline]
    fn render(&self, out: &mut Vec<u8>) {
        encode_into(self.encode_utf8(&mut [0; 4]), out);
    }
    fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        out.write_char(*self)
    }
}

/// A [`PlainKey`] value seen as a [`KeyArg`] (a type of its own, so that it does not overlap
/// `KeyArg`'s impl for `Display` types).
#[doc(hidden)]
#[repr(transparent)]
pub struct Plain<T>(T);

impl<T: PlainKey> Plain<T> {
    /// `value`, as a `Plain`.
    #[inline]
    pub fn wrap(value: &T) -> &Plain<T> {
        // SAFETY: `Plain<T>` is `repr(transparent)` over `T`: same layout and alignment, and
        // the reference keeps `value`'s lifetime.
        unsafe { &*(value as *const T as *const Plain<T>) }
    }
}

// Not suggested in the error for a value without `Display`: users never write a `Plain`.
#[diagnostic::do_not_recommend]
impl<T: PlainKey> KeyArg for Plain<T> {
    fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        self.0.write_raw(out)
    }

    #[inline]
    fn render(&self, out: &mut Vec<u8>) {
        self.0.render(out);
    }
}

impl<T: fmt::Display + ?Sized> KeyArg for T {
    #[inline]
    fn write_raw(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        write!(out, "{self}")
    }
}

/// Whether `byte` passes into a key unchanged. Everything else is percent-encoded.
#[inline]
pub const fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || byte == b'@' || byte >= 0x80
}

/// [`is_plain`] of every byte, for the loop that encodes values.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = is_plain(byte as u8);
        byte += 1;
    }
    table
};

/// Whether a literal that follows a placeholder in a template may start with `c`: an ASCII
/// character that is neither [plain](is_plain) nor `%`, so that it never occurs inside an
/// encoded value (see the [module documentation](self)). The one statement of the rule:
/// `#[cached]` and `#[invalidates]` check templates against it at compile time, with a
/// constant assertion for each placeholder followed by a literal.
#[doc(hidden)]
#[inline]
pub const fn is_separator_start(c: char) -> bool {
    c.is_ascii() && !is_plain(c as u8) && c != '%'
}

struct Encoder<'a>(&'a mut Vec<u8>);

impl fmt::Write for Encoder<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        encode_into(s, self.0);
        Ok(())
    }
}

#[inline]
fn encode_into(raw: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = raw.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !PLAIN[b as usize] {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

impl Template {
    /// Renders the template with `args` (one per placeholder, in order), appending UTF-8 to
    /// `out`. A hand-built template with fewer arguments than placeholders renders the missing
    /// ones as empty.
    pub fn render_into(&self, args: &[&(dyn KeyArg + Sync)], out: &mut Vec<u8>) {
        let mut args = args.iter();
        for segment in self.segments {
            match segment {
                Segment::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Segment::Value(filters) => {
                    let Some(arg) = args.next() else { continue };
                    if filters.is_empty() {
                        arg.render(out);
                    } else {
                        let mut raw = String::new();
                        let _ = arg.write_raw(&mut raw);
                        for filter in *filters {
                            filter.apply(&mut raw);
                        }
                        encode_into(&raw, out);
                    }
                }
            }
        }
    }

    /// Renders the template into a new string.
    pub fn render(&self, args: &[&(dyn KeyArg + Sync)]) -> String {
        let mut out = Vec::with_capacity(self.source.len() + 16);
        self.render_into(args, &mut out);
        // Only whole UTF-8 strings and ASCII escapes were appended.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// How many placeholders the template has.
    pub fn placeholders(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| matches!(s, Segment::Value(_)))
            .count()
    }
}

/// 64-bit FNV-1a, usable in constants: names each method's key space.
pub const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Encodes one value as a placeholder interpolates it: `encode_value("1.2")` is `"1%2E2"`.
/// For tags and keys built outside templates (a `CacheTags` implementation, a console) that
/// must match rendered ones.
pub fn encode_value(raw: &str) -> String {
    let mut out = Vec::with_capacity(raw.len());
    encode_into(raw, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Undoes the encoding of one interpolated value: `decode_value("1%2E2")` is `"1.2"`. For tools
/// that read ids back out of rendered keys (a cache warmer, say). `None` when `encoded` is not
/// the output of the encoding.
pub fn decode_value(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = encoded.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if is_plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOTTED: Template = Template {
        source: "x.{a}.{b}",
        segments: &[
            Segment::Literal("x."),
            Segment::Value(&[]),
            Segment::Literal("."),
            Segment::Value(&[]),
        ],
    };

    #[test]
    fn boundaries_are_unambiguous() {
        let one = DOTTED.render(&[&"1.2", &"3"]);
        let two = DOTTED.render(&[&"1", &"2.3"]);
        assert_ne!(one, two);
        assert_eq!(one, "x.1%2E2.3");
        assert_eq!(two, "x.1.2%2E3");
        assert_eq!(decode_value("1%2E2").as_deref(), Some("1.2"));
        assert_eq!(decode_value("Zo\u{eb}%0A").as_deref(), Some("Zo\u{eb}\n"));
        assert_eq!(decode_value("a.b"), None);
        assert_eq!(DOTTED.render(&[&"%2E", &""]), "x.%252E.");
    }

    /// What `Display` renders: the path every type without a [`PlainKey`] impl takes.
    fn through_display(value: &(dyn KeyArg + Sync)) -> Vec<u8> {
        let mut out = Vec::new();
        value.render(&mut out);
        out
    }

    fn through_plain<T: PlainKey>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        Plain::wrap(value).render(&mut out);
        out
    }

    #[test]
    fn plain_values_render_as_their_display_text_does() {
        fn same<T: PlainKey + fmt::Display + Sync>(value: T) {
            let plain = through_plain(&value);
            assert_eq!(plain, through_display(&value), "{value}");
            let mut raw = String::new();
            Plain::wrap(&value).write_raw(&mut raw).unwrap();
            assert_eq!(raw, value.to_string(), "the raw text that filters see");
        }
        for text in ["c12", "", "a.b", "100%", "Zo\u{eb} \n", "x{y}|z", "-_@"] {
            same(text);
            same(text.to_owned());
            same(Box::<str>::from(text));
            same(std::sync::Arc::<str>::from(text));
            same(std::borrow::Cow::Borrowed(text));
            same(&&text as &&&str);
        }
        same(0u8);
        same(u8::MAX);
        same(u16::MAX);
        same(u32::MAX);
        same(u64::MAX);
        same(usize::MAX);
        same(0i64);
        same(-1i8);
        same(i8::MIN);
        same(i16::MIN);
        same(i32::MIN);
        same(i64::MIN);
        same(i64::MAX);
        same(isize::MIN);
        same(true);
        same(false);
        for c in ['a', '.', '%', '\u{eb}', '\u{1F600}', ' '] {
            same(c);
        }
        assert_eq!(through_plain(&"a.b"), b"a%2Eb");
        assert_eq!(through_plain(&-42i32), b"-42");
    }

    #[test]
    fn every_filter_has_its_name_and_field() {
        assert_eq!(Filter::NAMES, ["lower", "upper", "trim", "sha256"]);
        let fields = [FILTERS.lower, FILTERS.upper, FILTERS.trim, FILTERS.sha256];
        for (name, field) in Filter::NAMES.iter().zip(fields) {
            assert_eq!(Filter::from_name(name), Some(field));
        }
        assert_eq!(Filter::from_name("Lower"), None);
    }

    #[test]
    fn filters_chain_left_to_right() {
        const T: Template = Template {
            source: "e.{email | trim | lower | sha256}",
            segments: &[
                Segment::Literal("e."),
                Segment::Value(&[Filter::Trim, Filter::Lower, Filter::Sha256]),
            ],
        };
        let key = T.render(&[&"  Ann@Example.COM "]);
        assert_eq!(key, format!("e.{}", hex_sha("ann@example.com")));
        assert!(!key.contains("ann"));
    }

    fn hex_sha(s: &str) -> String {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn non_ascii_passes_and_controls_are_encoded() {
        const T: Template = Template {
            source: "n.{a}",
            segments: &[Segment::Literal("n."), Segment::Value(&[])],
        };
        assert_eq!(T.render(&[&"Zoë\n"]), "n.Zoë%0A");
        assert_eq!(T.render(&[&42u32]), "n.42");
    }

    /// The separator rule as a table; the same table is in the macro crate's `template.rs`
    /// tests, which pins the macro's copy of the rule to this one.
    #[test]
    fn separator_rule_matches_the_table() {
        const ACCEPTED_PRINTABLE: &str = " !\"#$&'()*+,./:;<=>?[\\]^`{|}~";
        for byte in 0u8..128 {
            let c = char::from(byte);
            let expected = c.is_ascii_control() || ACCEPTED_PRINTABLE.contains(c);
            assert_eq!(is_separator_start(c), expected, "{c:?}");
        }
        for c in "\u{80}\u{b7}\u{e4}\u{c4}\u{20ac}\u{ff0e}\u{1f600}".chars() {
            assert!(!is_separator_start(c), "{c:?}");
        }
    }

    /// Step 2 of the injectivity argument: no accepted separator character survives encoding.
    #[test]
    fn encoded_values_never_contain_a_separator_start() {
        for byte in 0u8..128 {
            let c = char::from(byte);
            let encoded = encode_value(&format!("a{c}\u{e4}{c}"));
            // Plain characters are kept, and `%` starts the escapes.
            assert_eq!(
                encoded.contains(c),
                !is_separator_start(c),
                "{c:?} in {encoded:?}"
            );
        }
    }

    /// Text a random template or value is built from: separators, `%`, escapes, non-ASCII.
    const ATOMS: &[&str] = &[
        "",
        ".",
        "%",
        "2E",
        "%2E",
        "\u{b7}",
        "\u{e4}",
        "x",
        "1",
        "@",
        " ",
        "{",
        "\u{1f600}",
    ];

    fn atoms(rng: &mut fastrand::Rng, max: usize) -> String {
        (0..rng.usize(0..=max))
            .map(|_| ATOMS[rng.usize(..ATOMS.len())])
            .collect()
    }

    /// A random template the macro accepts: every placeholder followed by the end or by a
    /// literal that starts with a separator character.
    fn random_template(rng: &mut fastrand::Rng) -> Template {
        // Candidates for a literal's first character, the rejected ones included.
        const FIRST: &str = ".:/%\u{b7}\u{e4}x1-@_ {}|\n\u{1f600}";
        let mut segments = Vec::new();
        let mut source = String::new();
        let prefix = atoms(rng, 2);
        if !prefix.is_empty() {
            push_literal(prefix, &mut segments, &mut source);
        }
        let placeholders = rng.usize(1..=3);
        for i in 0..placeholders {
            segments.push(Segment::Value(&[]));
            source.push_str(&format!("{{v{i}}}"));
            if i + 1 == placeholders && rng.bool() {
                break;
            }
            let first = loop {
                let c = rng.choice(FIRST.chars().collect::<Vec<_>>()).unwrap_or('.');
                if is_separator_start(c) {
                    break c;
                }
            };
            let text = format!("{first}{}", atoms(rng, 2));
            push_literal(text, &mut segments, &mut source);
        }
        Template {
            source: source.leak(),
            segments: segments.leak(),
        }
    }

    fn push_literal(text: String, segments: &mut Vec<Segment>, source: &mut String) {
        source.push_str(&text.replace('{', "{{").replace('}', "}}"));
        segments.push(Segment::Literal(text.leak()));
    }

    #[test]
    fn accepted_templates_render_distinct_tuples_to_distinct_keys() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_cafe);
        let mut cases = 0;
        for _ in 0..200 {
            let template = random_template(&mut rng);
            // Values built from the template's own literals too, the likeliest to collide.
            let pieces: Vec<&str> = template
                .segments
                .iter()
                .filter_map(|s| match s {
                    Segment::Literal(text) => Some(*text),
                    Segment::Value(_) => None,
                })
                .collect();
            let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
            for _ in 0..100 {
                let tuple: Vec<String> = (0..template.placeholders())
                    .map(|_| {
                        (0..rng.usize(0..=3))
                            .map(|_| match rng.usize(..3) {
                                0 if !pieces.is_empty() => pieces[rng.usize(..pieces.len())],
                                _ => ATOMS[rng.usize(..ATOMS.len())],
                            })
                            .collect()
                    })
                    .collect();
                let args: Vec<&(dyn KeyArg + Sync)> =
                    tuple.iter().map(|v| v as &(dyn KeyArg + Sync)).collect();
                let key = template.render(&args);
                // Rendered as the expansion renders strings (`Plain`), the same key.
                let plain: Vec<&(dyn KeyArg + Sync)> = tuple
                    .iter()
                    .map(|v| Plain::wrap(v) as &(dyn KeyArg + Sync))
                    .collect();
                assert_eq!(template.render(&plain), key);
                if let Some(other) = seen.insert(key.clone(), tuple.clone()) {
                    assert_eq!(
                        other, tuple,
                        "two tuples render {key:?} with {:?}",
                        template.source
                    );
                }
                cases += 1;
            }
        }
        assert_eq!(cases, 20_000);
    }
}
