//! The fields of a span as a JSON object, built in one buffer and handed to the span whole.
//!
//! With JSON logs, tracing-subscriber formats a span's fields when the span is made and keeps the
//! text, to copy into every line logged inside it. Its own formatter (`JsonFields`) builds a map of
//! `serde_json::Value`s first and serializes that: every request's span paid for it, though most
//! requests log nothing. This one writes the same object directly. Values are escaped as JSON
//! strings (a client sends its own `x-request-id`): quotes, backslashes and control characters.

use std::fmt::{self, Write};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// Span fields as one JSON object (see the module).
pub struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    /// The object is built in a buffer of its own and handed over whole: written piece by piece,
    /// the span's empty text grew (and moved) four or five times per request, through a dynamic
    /// call per piece.
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut text = String::with_capacity(128);
        text.push('{');
        let mut v = Visitor {
            out: &mut text,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result?;
        text.push('}');
        writer.write_str(&text)
    }

    /// Fields recorded later go inside the same object (a repeated name: the last one wins when
    /// the line is read back).
    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &tracing::span::Record<'_>) -> fmt::Result {
        let text = &mut current.fields;
        let first = match text.pop() {
            Some('}') => text.ends_with('{'),
            _ => {
                text.clear();
                text.push('{');
                true
            }
        };
        let mut v = Visitor {
            out: text,
            first,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result?;
        text.push('}');
        Ok(())
    }
}

struct Visitor<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<W: Write> Visitor<'_, W> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.out.write_char(',')?;
        }
        quoted_str(self.out, field.name())?;
        self.out.write_char(':')
    }

    fn entry(&mut self, field: &Field, value: fmt::Arguments<'_>, as_string: bool) {
        if self.result.is_ok() {
            self.result = self
                .key(field)
                .and_then(|()| if as_string { quoted(self.out, value) } else { self.out.write_fmt(value) });
        }
    }
}

/// Writes `value` as a JSON string (a `&str` field: no formatting machinery).
fn quoted_str<W: Write>(out: &mut W, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaping(out).write_str(value)?;
    out.write_char('"')
}

impl<W: Write> Visit for Visitor<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_ok() {
            self.result = self.key(field).and_then(|()| quoted_str(self.out, value));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, format_args!("{value}"), false);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, format_args!("{value}"), false);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, format_args!("{value}"), false);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, format_args!("{value:?}"), true);
    }
}

/// Writes `value` as a JSON string.
fn quoted<W: Write>(out: &mut W, value: fmt::Arguments<'_>) -> fmt::Result {
    out.write_char('"')?;
    Escaping(out).write_fmt(value)?;
    out.write_char('"')
}

/// Escapes what it is given as the inside of a JSON string (RFC 8259 §7).
struct Escaping<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // What must be escaped is ASCII, so a byte scan finds it (a UTF-8 sequence's bytes are all
        // ≥ 0x80) and slicing at it stays on a char boundary: one pass over bytes, not chars.
        let mut rest = s;
        while let Some(at) = rest.bytes().position(|b| b == b'"' || b == b'\\' || b < b' ') {
            self.0.write_str(&rest[..at])?;
            match rest.as_bytes()[at] {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                b => write!(self.0, "\\u{b:04x}")?,
            }
            rest = &rest[at + 1..];
        }
        self.0.write_str(rest)
    }
}
