//! Header name case kept without a second header map while names arrive title-cased.
//!
//! pinlb patch. Keeping the wire case of every header name costs a second `HeaderMap`
//! (hashed, filled, cloned and dropped with the first). Most peers write names in title
//! case (`Content-Type`, `X-Forwarded-For`); a header whose wire case is the title case of
//! its name needs nothing stored. The few other names (`ETag`, `x-custom`) are kept in a
//! short list. Only when a name shows up in two different cases, or the list is full, is
//! the full case map built, and from then on it is used as before.

use crate::case_header_name::{CaseHeaderName, IntoCaseHeaderName};
use crate::wire::Name;
use crate::{title_case, CaseMap, HMap};
use bytes::{BufMut, Bytes};
use http::header::HeaderName;
use pingora_error::{ErrorType::*, OrErr, Result};

/// Names kept in a case other than title case before the full case map is built instead.
const MAX_OVERRIDES: usize = 8;

/// The case state of a header whose case map is not (yet) built.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeferredCase {
    /// Whether case is being kept this way at all; `false` for headers that keep no case
    /// or already have a case map.
    active: bool,
    /// Names whose every value is written in the given case instead of title case.
    overrides: Vec<(HeaderName, CaseHeaderName)>,
}

impl DeferredCase {
    pub(crate) fn active() -> Self {
        Self {
            active: true,
            overrides: Vec::new(),
        }
    }

    /// Whether the wire case is kept here (and not in a case map, or not at all).
    pub(crate) fn is_active(&self) -> bool {
        self.active
    }

    /// Records that `name` is about to be added in the wire case `case`, replacing its
    /// values if `replace`. When this cannot be kept here, builds the full case map into
    /// `name_map` from `headers` (as they are before the addition) and stops deferring:
    /// the caller then adds the name to the map as usual.
    #[inline]
    pub(crate) fn keep(
        &mut self,
        name_map: &mut Option<CaseMap>,
        headers: &HMap,
        name: &HeaderName,
        case: &CaseHeaderName,
        replace: bool,
    ) -> Result<()> {
        if !self.active {
            return Ok(());
        }
        let titled = is_title_case(name, case.as_slice());
        self.keep_titled(name_map, headers, name, case, titled, replace)
    }

    /// [Self::keep()] when whether `case` is the title case of `name` is known already
    /// (`titled`, from [crate::WireName]).
    #[inline]
    pub(crate) fn keep_titled(
        &mut self,
        name_map: &mut Option<CaseMap>,
        headers: &HMap,
        name: &HeaderName,
        case: &CaseHeaderName,
        titled: bool,
        replace: bool,
    ) -> Result<()> {
        if !self.needs_case(titled) {
            return Ok(());
        }
        self.keep_other(name_map, headers, name, case, titled, replace)
    }

    /// Whether [Self::keep_titled()] looks at the wire case of a name in title case or not
    /// (`titled`): not when case is not kept here, nor in the common case of nothing kept
    /// before and nothing to keep now (pinlb patch).
    #[inline]
    pub(crate) fn needs_case(&self, titled: bool) -> bool {
        self.active && !(self.overrides.is_empty() && titled)
    }

    /// [Self::keep_titled()] replacing the values of a name in title case: nothing is kept,
    /// only a case kept before for the name is dropped; no wire case is needed (pinlb patch).
    #[inline]
    pub(crate) fn forget(&mut self, name: &HeaderName) {
        if self.active && !self.overrides.is_empty() {
            if let Some(i) = self.overrides.iter().position(|(n, _)| n == name) {
                self.overrides.swap_remove(i);
            }
        }
    }

    /// [Self::keep()] for a name not in title case, or while some name is kept in another case.
    fn keep_other(
        &mut self,
        name_map: &mut Option<CaseMap>,
        headers: &HMap,
        name: &HeaderName,
        case: &CaseHeaderName,
        titled: bool,
        replace: bool,
    ) -> Result<()> {
        if replace {
            self.forget(name);
            return if titled {
                Ok(())
            } else {
                self.add_override(name_map, headers, name, case)
            };
        }
        match self.overrides.iter().position(|(n, _)| n == name) {
            // Values already there are title-cased, as this one: nothing to keep.
            None if titled => Ok(()),
            None if !headers.contains_key(name) => self.add_override(name_map, headers, name, case),
            Some(i) if self.overrides[i].1.as_slice() == case.as_slice() => Ok(()),
            // One name in two cases.
            _ => self.build_map(name_map, headers),
        }
    }

    fn add_override(
        &mut self,
        name_map: &mut Option<CaseMap>,
        headers: &HMap,
        name: &HeaderName,
        case: &CaseHeaderName,
    ) -> Result<()> {
        if self.overrides.len() == MAX_OVERRIDES {
            return self.build_map(name_map, headers);
        }
        self.overrides.push((name.clone(), case.clone()));
        Ok(())
    }

    /// Builds the case map for `headers` with the case each is written with now.
    fn build_map(&mut self, name_map: &mut Option<CaseMap>, headers: &HMap) -> Result<()> {
        let mut map = CaseMap::with_capacity(headers.len() + 1);
        for (name, _) in headers {
            let case = match self.case_override(name) {
                Some(case) => case.clone(),
                None => title_case_bytes(name).into_case_header_name(),
            };
            map.try_append(name.clone(), case)
                .or_err(InvalidHTTPHeader, "header name map size overflows MAX_SIZE")?;
        }
        *name_map = Some(map);
        *self = Self::default();
        Ok(())
    }

    /// Drops the kept case of names that no longer have values in `headers`.
    pub(crate) fn prune(&mut self, headers: &HMap) {
        if !self.overrides.is_empty() {
            self.overrides
                .retain(|(name, _)| headers.contains_key(name));
        }
    }

    fn case_override(&self, name: &HeaderName) -> Option<&CaseHeaderName> {
        self.overrides
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, case)| case)
    }

    /// Writes `name` in its kept case.
    pub(crate) fn put_name(&self, name: &HeaderName, buf: &mut impl BufMut) {
        match self.case_override(name) {
            Some(case) => buf.put_slice(case.as_slice()),
            None => put_title_case(name, buf),
        }
    }

    /// How `name` is written: in its kept case, or else in title case.
    #[inline]
    pub(crate) fn wire_name<'a>(&'a self, name: &'a HeaderName) -> Name<'a> {
        match self.case_override(name) {
            Some(case) => Name::AsIs(case.as_slice()),
            None => Name::Titled(name.as_str().as_bytes()),
        }
    }

    /// `name` in its kept case, for callers that need it as text.
    pub(crate) fn name_string(&self, name: &HeaderName) -> String {
        match self.case_override(name) {
            Some(case) => String::from_utf8_lossy(case.as_slice()).into_owned(),
            None => String::from_utf8_lossy(&title_case_bytes(name)).into_owned(),
        }
    }
}

pub(crate) fn is_title_case(name: &HeaderName, wire: &[u8]) -> bool {
    title_case::is_title_case(name.as_str().as_bytes(), wire)
}

fn put_title_case(name: &HeaderName, buf: &mut impl BufMut) {
    title_case::title_case_pieces(name.as_str().as_bytes(), |piece| buf.put_slice(piece));
}

fn title_case_bytes(name: &HeaderName) -> Bytes {
    let mut out = Vec::with_capacity(name.as_str().len());
    put_title_case(name, &mut out);
    out.into()
}
