//! Reading an import file (a JSON export or an Automerge document) apart from applying it: the
//! bytes come from anywhere, so they are decoded and validated before the vault's write
//! transaction starts, and the decoding is reachable without a vault for fuzzing.

use serde_json::Value;

use super::{AUTOMERGE_MAGIC, EXPORT_FORMAT, ImportError, ImportMode};
use crate::doc::{Allowed, VaultDoc, guarded_reads};
use crate::vault::EditError;

/// An import file, decoded and validated, not yet written anywhere.
pub(crate) enum Decoded {
    /// Values to write as new changes (a JSON export, or an Automerge document that does not
    /// descend from a vault).
    Values(Value),
    /// A vault's Automerge document, to merge.
    Merge(Box<VaultDoc>),
}

impl Decoded {
    /// Detects the format from the content and decodes it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, ImportError> {
        if bytes.starts_with(&AUTOMERGE_MAGIC) {
            Self::decode_automerge(bytes)
        } else if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            Self::decode_json(bytes)
        } else {
            Err(ImportError::UnknownFormat)
        }
    }

    fn decode_json(bytes: &[u8]) -> Result<Self, ImportError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ImportError::MalformedJson { line: e.line(), column: e.column() })?;
        if value.get("format").and_then(Value::as_str) != Some(EXPORT_FORMAT) {
            return Err(ImportError::NotAnExport);
        }
        crate::schema::validate(crate::schema::Shape::Document, "", &value).map_err(ImportError::Schema)?;
        Ok(Self::Values(value))
    }

    fn decode_automerge(bytes: &[u8]) -> Result<Self, ImportError> {
        // Every read of the foreign document, not only its loading: Automerge checks some of
        // its columns lazily and panics on a bad one.
        guarded_reads(|| {
            let mut other = VaultDoc::load(bytes, Allowed::Foreign)?;
            other.check_shape()?;
            if other.has_genesis() {
                Ok(Self::Merge(Box::new(other)))
            } else {
                Ok(Self::Values(other.to_json()))
            }
        })
        .map_err(ImportError::Automerge)
    }

    /// Applies the import to `doc` (inside the caller's transaction).
    pub(crate) fn apply(self, doc: &mut VaultDoc) -> Result<ImportMode, EditError> {
        match self {
            Self::Values(value) => {
                doc.apply_json(&value)?;
                Ok(ImportMode::Values)
            }
            Self::Merge(mut other) => {
                // The merged result is read whole once, still guarded: a change that applies
                // but reads back badly is refused here (the caller drops what was merged)
                // rather than met later by every read of the vault.
                guarded_reads(|| {
                    doc.merge(&mut other)?;
                    doc.check_shape()
                })?;
                Ok(ImportMode::Merged)
            }
        }
    }
}
