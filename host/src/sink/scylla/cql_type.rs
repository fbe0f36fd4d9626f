//! CQL column types as the sink understands them: parsed from the type
//! strings of `system_schema.columns` or of the `columns` config table
//! (`text`, `list<int>`, `frozen<map<text, bigint>>`, ...).

use std::fmt;

/// A CQL type the sink can convert JSON into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CqlType {
    /// `ascii`: US-ASCII text.
    Ascii,
    /// `text` / `varchar`: UTF-8 text.
    Text,
    /// `int`: 32-bit signed integer.
    Int,
    /// `bigint`: 64-bit signed integer.
    BigInt,
    /// `smallint`: 16-bit signed integer.
    SmallInt,
    /// `tinyint`: 8-bit signed integer.
    TinyInt,
    /// `varint`: arbitrary-precision integer.
    Varint,
    /// `float`: 32-bit IEEE-754.
    Float,
    /// `double`: 64-bit IEEE-754.
    Double,
    /// `decimal`: arbitrary-precision decimal.
    Decimal,
    /// `boolean`.
    Boolean,
    /// `timestamp`: milliseconds since the Unix epoch.
    Timestamp,
    /// `date`: a day without time zone.
    Date,
    /// `time`: nanoseconds since midnight.
    Time,
    /// `uuid`: any UUID.
    Uuid,
    /// `timeuuid`: a version-1 UUID.
    Timeuuid,
    /// `inet`: an IPv4 or IPv6 address.
    Inet,
    /// `blob`: bytes (base64 in JSON).
    Blob,
    /// `list<T>`.
    List(Box<CqlType>),
    /// `set<T>`.
    Set(Box<CqlType>),
    /// `map<K, V>`.
    Map(Box<CqlType>, Box<CqlType>),
}

/// A type string the sink cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported CQL type `{text}`: {reason}")]
pub struct TypeParseError {
    /// The type string as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl CqlType {
    /// Parse a CQL type string (case-insensitive, `frozen<...>` accepted).
    pub fn parse(text: &str) -> Result<CqlType, TypeParseError> {
        let err = |reason: &str| TypeParseError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let mut p = Parser {
            src: text.as_bytes(),
            pos: 0,
        };
        let ty = p.parse_type().map_err(|r| err(&r))?;
        p.skip_ws();
        if p.pos != p.src.len() {
            return Err(err("unexpected text after the type"));
        }
        Ok(ty)
    }

    /// Whether this is a collection (list, set or map).
    pub fn is_collection(&self) -> bool {
        matches!(self, CqlType::List(_) | CqlType::Set(_) | CqlType::Map(..))
    }
}

impl fmt::Display for CqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CqlType::Ascii => f.write_str("ascii"),
            CqlType::Text => f.write_str("text"),
            CqlType::Int => f.write_str("int"),
            CqlType::BigInt => f.write_str("bigint"),
            CqlType::SmallInt => f.write_str("smallint"),
            CqlType::TinyInt => f.write_str("tinyint"),
            CqlType::Varint => f.write_str("varint"),
            CqlType::Float => f.write_str("float"),
            CqlType::Double => f.write_str("double"),
            CqlType::Decimal => f.write_str("decimal"),
            CqlType::Boolean => f.write_str("boolean"),
            CqlType::Timestamp => f.write_str("timestamp"),
            CqlType::Date => f.write_str("date"),
            CqlType::Time => f.write_str("time"),
            CqlType::Uuid => f.write_str("uuid"),
            CqlType::Timeuuid => f.write_str("timeuuid"),
            CqlType::Inet => f.write_str("inet"),
            CqlType::Blob => f.write_str("blob"),
            CqlType::List(t) => write!(f, "list<{t}>"),
            CqlType::Set(t) => write!(f, "set<{t}>"),
            CqlType::Map(k, v) => write!(f, "map<{k}, {v}>"),
        }
    }
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.src.len() && self.src[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn ident(&mut self) -> String {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.src.len()
            && (self.src[self.pos].is_ascii_alphanumeric() || self.src[self.pos] == b'_')
        {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).to_ascii_lowercase()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_ws();
        if self.src.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{}`", c as char))
        }
    }

    fn parse_type(&mut self) -> Result<CqlType, String> {
        let name = self.ident();
        Ok(match name.as_str() {
            "ascii" => CqlType::Ascii,
            "text" | "varchar" => CqlType::Text,
            "int" => CqlType::Int,
            "bigint" => CqlType::BigInt,
            "smallint" => CqlType::SmallInt,
            "tinyint" => CqlType::TinyInt,
            "varint" => CqlType::Varint,
            "float" => CqlType::Float,
            "double" => CqlType::Double,
            "decimal" => CqlType::Decimal,
            "boolean" => CqlType::Boolean,
            "timestamp" => CqlType::Timestamp,
            "date" => CqlType::Date,
            "time" => CqlType::Time,
            "uuid" => CqlType::Uuid,
            "timeuuid" => CqlType::Timeuuid,
            "inet" => CqlType::Inet,
            "blob" => CqlType::Blob,
            "frozen" => {
                self.expect(b'<')?;
                let inner = self.parse_type()?;
                self.expect(b'>')?;
                inner
            }
            "list" | "set" => {
                self.expect(b'<')?;
                let inner = Box::new(self.parse_type()?);
                self.expect(b'>')?;
                if name == "list" {
                    CqlType::List(inner)
                } else {
                    CqlType::Set(inner)
                }
            }
            "map" => {
                self.expect(b'<')?;
                let k = Box::new(self.parse_type()?);
                self.expect(b',')?;
                let v = Box::new(self.parse_type()?);
                self.expect(b'>')?;
                CqlType::Map(k, v)
            }
            "" => return Err("expected a type name".to_string()),
            "counter" => {
                return Err("counter columns are updated with UPDATE, not INSERT".to_string());
            }
            other => return Err(format!("`{other}` is not supported by the scylla sink")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scalars_collections_and_frozen() {
        assert_eq!(CqlType::parse("text").unwrap(), CqlType::Text);
        assert_eq!(CqlType::parse("VARCHAR").unwrap(), CqlType::Text);
        assert_eq!(
            CqlType::parse("frozen<map<text, list<int>>>").unwrap(),
            CqlType::Map(
                Box::new(CqlType::Text),
                Box::new(CqlType::List(Box::new(CqlType::Int)))
            )
        );
        assert_eq!(
            CqlType::parse("set<frozen<set<uuid>>>")
                .unwrap()
                .to_string(),
            "set<set<uuid>>"
        );
    }

    #[test]
    fn rejects_unsupported_types_by_name() {
        let e = CqlType::parse("counter").unwrap_err();
        assert!(e.to_string().contains("counter"), "{e}");
        let e = CqlType::parse("duration").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported CQL type `duration`: `duration` is not supported by the scylla sink"
        );
        assert!(CqlType::parse("list<int").is_err());
        assert!(CqlType::parse("int int").is_err());
    }
}
