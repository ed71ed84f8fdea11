//! The model's input columns, read from a [`UciSession`], and the UCI CSV layout both training sources share.
//!
//! The UCI file and `checkout-ai export-sessions` (sessions folded from the event log) use the same header,
//! so one reader feeds training whatever the source, and the values it yields are the ones the serving path
//! computes from the session entity.

use crate::event::VisitorType;
use crate::features::UciSession;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
#[cfg(feature = "csv")]
use std::io::{Read, Write};

/// One input column, named as in the UCI file's header (which is also how artifacts spell it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Column {
    Administrative,
    #[serde(rename = "Administrative_Duration")]
    AdministrativeDuration,
    Informational,
    #[serde(rename = "Informational_Duration")]
    InformationalDuration,
    ProductRelated,
    #[serde(rename = "ProductRelated_Duration")]
    ProductRelatedDuration,
    BounceRates,
    ExitRates,
    PageValues,
    SpecialDay,
    Month,
    OperatingSystems,
    Browser,
    Region,
    TrafficType,
    VisitorType,
    Weekend,
}

/// Whether a column is read as a number or as a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Numeric,
    Categorical,
}

/// The label column of the CSV layout.
pub const LABEL: &str = "Revenue";

/// UCI's month labels (it writes `June`, not `Jun`).
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "June", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Column {
    /// Every column, in the UCI file's order.
    pub const ALL: [Column; 17] = [
        Column::Administrative,
        Column::AdministrativeDuration,
        Column::Informational,
        Column::InformationalDuration,
        Column::ProductRelated,
        Column::ProductRelatedDuration,
        Column::BounceRates,
        Column::ExitRates,
        Column::PageValues,
        Column::SpecialDay,
        Column::Month,
        Column::OperatingSystems,
        Column::Browser,
        Column::Region,
        Column::TrafficType,
        Column::VisitorType,
        Column::Weekend,
    ];

    /// The header name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Administrative => "Administrative",
            Column::AdministrativeDuration => "Administrative_Duration",
            Column::Informational => "Informational",
            Column::InformationalDuration => "Informational_Duration",
            Column::ProductRelated => "ProductRelated",
            Column::ProductRelatedDuration => "ProductRelated_Duration",
            Column::BounceRates => "BounceRates",
            Column::ExitRates => "ExitRates",
            Column::PageValues => "PageValues",
            Column::SpecialDay => "SpecialDay",
            Column::Month => "Month",
            Column::OperatingSystems => "OperatingSystems",
            Column::Browser => "Browser",
            Column::Region => "Region",
            Column::TrafficType => "TrafficType",
            Column::VisitorType => "VisitorType",
            Column::Weekend => "Weekend",
        }
    }

    /// How the column is read. `Weekend` is a number (0 or 1), as in the reference protocol.
    pub fn kind(self) -> Kind {
        match self {
            Column::Month
            | Column::OperatingSystems
            | Column::Browser
            | Column::Region
            | Column::TrafficType
            | Column::VisitorType => Kind::Categorical,
            _ => Kind::Numeric,
        }
    }

    /// The column's numeric value in `row`; `None` for a categorical column.
    pub fn numeric(self, row: &UciSession) -> Option<f64> {
        Some(match self {
            Column::Administrative => row.administrative,
            Column::AdministrativeDuration => row.administrative_duration,
            Column::Informational => row.informational,
            Column::InformationalDuration => row.informational_duration,
            Column::ProductRelated => row.product_related,
            Column::ProductRelatedDuration => row.product_related_duration,
            Column::BounceRates => row.bounce_rates,
            Column::ExitRates => row.exit_rates,
            Column::PageValues => row.page_values,
            Column::SpecialDay => row.special_day,
            Column::Weekend => f64::from(u8::from(row.weekend)),
            _ => return None,
        })
    }

    /// The column's category in `row`, spelled as in the UCI file; `None` when absent or numeric.
    pub fn category(self, row: &UciSession) -> Option<Cow<'_, str>> {
        match self {
            Column::Month => month_label(row.month).map(Cow::Borrowed),
            Column::OperatingSystems => row.operating_systems.as_deref().map(Cow::Borrowed),
            Column::Browser => row.browser.as_deref().map(Cow::Borrowed),
            Column::Region => row.region.as_deref().map(Cow::Borrowed),
            Column::TrafficType => row.traffic_type.map(|t| Cow::Owned(t.to_string())),
            Column::VisitorType => Some(Cow::Borrowed(visitor_label(row.visitor_type))),
            _ => None,
        }
    }
}

fn month_label(month: u32) -> Option<&'static str> {
    MONTHS
        .get(usize::try_from(month).ok()?.checked_sub(1)?)
        .copied()
}

fn visitor_label(v: VisitorType) -> &'static str {
    match v {
        VisitorType::New => "New_Visitor",
        VisitorType::Returning => "Returning_Visitor",
        VisitorType::Other => "Other",
    }
}

/// A row the reader could not use, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

/// A labelled dataset in the UCI layout, with the SHA-256 of the exact bytes it was read from.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub rows: Vec<UciSession>,
    pub labels: Vec<bool>,
    pub sha256: String,
    /// Rows skipped (counted, not fatal); `bad_examples` keeps the first few.
    pub bad_rows: u64,
    pub bad_examples: Vec<BadRow>,
}

impl Dataset {
    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&l| l).count()
    }
}

#[cfg(feature = "csv")]
/// The CSV could not be read at all (as opposed to single bad rows, which are counted).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("reading the CSV: {0}")]
    Io(#[from] csv::Error),
    #[error("the CSV has no `{0}` column (expected the UCI online-shoppers header)")]
    MissingColumn(&'static str),
}

#[cfg(feature = "csv")]
/// Reads a labelled dataset in the UCI layout: header by name (any order, extra columns ignored), CRLF or LF,
/// booleans as `TRUE`/`FALSE` (or `true`/`false`, `1`/`0`). An empty categorical cell is a missing value;
/// a row with an unreadable value is counted in `bad_rows` and skipped.
pub fn read_csv(input: impl Read) -> Result<Dataset, CsvError> {
    use sha2::{Digest, Sha256};
    struct Hashing<R> {
        inner: R,
        hash: Sha256,
    }
    impl<R: Read> Read for Hashing<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.hash.update(&buf[..n]);
            Ok(n)
        }
    }
    let mut source = Hashing {
        inner: input,
        hash: Sha256::new(),
    };
    let mut data = Dataset::default();
    {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(&mut source);
        let header = reader.headers()?.clone();
        let index = |name: &'static str| {
            header
                .iter()
                .position(|h| h.trim() == name)
                .ok_or(CsvError::MissingColumn(name))
        };
        let mut positions = Vec::with_capacity(Column::ALL.len());
        for c in Column::ALL {
            positions.push(index(c.name())?);
        }
        let label_at = index(LABEL)?;
        let mut record = csv::StringRecord::new();
        let mut line = 1; // the header; a record per line (the UCI layout has no multi-line fields)
        while reader.read_record(&mut record)? {
            line += 1;
            let field = |i: usize| record.get(i).map(str::trim).unwrap_or("");
            let parsed = parse_row(|c| field(positions[c as usize]))
                .and_then(|row| Ok((row, parse_bool(LABEL, field(label_at))?)));
            match parsed {
                Ok((row, label)) => {
                    data.rows.push(row);
                    data.labels.push(label);
                }
                Err(reason) => {
                    data.bad_rows += 1;
                    if data.bad_examples.len() < 10 {
                        data.bad_examples.push(BadRow { line, reason });
                    }
                }
            }
        }
    }
    // Hash whatever the reader left unread too, so the digest is that of the whole input.
    std::io::copy(&mut source, &mut std::io::sink()).map_err(csv::Error::from)?;
    data.sha256 = hex::encode(source.hash.finalize());
    Ok(data)
}

#[cfg(feature = "csv")]
fn parse_row<'a>(field: impl Fn(Column) -> &'a str) -> Result<UciSession, String> {
    let num = |c: Column| -> Result<f64, String> {
        let raw = field(c);
        raw.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{}: `{raw}` is not a finite number", c.name()))
    };
    let opt = |c: Column| Some(field(c)).filter(|v| !v.is_empty()).map(str::to_owned);
    let month = match field(Column::Month) {
        "" => 0,
        m => MONTHS
            .iter()
            .position(|&l| l == m)
            .map(|i| i as u32 + 1)
            .ok_or_else(|| format!("Month: `{m}` is not one of {MONTHS:?}"))?,
    };
    let visitor_type = match field(Column::VisitorType) {
        "New_Visitor" => VisitorType::New,
        "Returning_Visitor" => VisitorType::Returning,
        "Other" | "" => VisitorType::Other,
        v => {
            return Err(format!(
                "VisitorType: `{v}` is not New_Visitor, Returning_Visitor or Other"
            ))
        }
    };
    let traffic_type = match field(Column::TrafficType) {
        "" => None,
        t => Some(
            t.parse::<u16>()
                .map_err(|_| format!("TrafficType: `{t}` is not a small integer"))?,
        ),
    };
    Ok(UciSession {
        administrative: num(Column::Administrative)?,
        administrative_duration: num(Column::AdministrativeDuration)?,
        informational: num(Column::Informational)?,
        informational_duration: num(Column::InformationalDuration)?,
        product_related: num(Column::ProductRelated)?,
        product_related_duration: num(Column::ProductRelatedDuration)?,
        bounce_rates: num(Column::BounceRates)?,
        exit_rates: num(Column::ExitRates)?,
        page_values: num(Column::PageValues)?,
        special_day: num(Column::SpecialDay)?,
        month,
        operating_systems: opt(Column::OperatingSystems),
        browser: opt(Column::Browser),
        region: opt(Column::Region),
        traffic_type,
        visitor_type,
        weekend: parse_bool(Column::Weekend.name(), field(Column::Weekend))?,
    })
}

#[cfg(feature = "csv")]
fn parse_bool(column: &str, raw: &str) -> Result<bool, String> {
    match raw {
        "TRUE" | "true" | "True" | "1" => Ok(true),
        "FALSE" | "false" | "False" | "0" => Ok(false),
        _ => Err(format!("{column}: `{raw}` is not TRUE or FALSE")),
    }
}

#[cfg(feature = "csv")]
/// Writes labelled rows in the UCI layout, readable by [`read_csv`]. Numbers are written in Rust's shortest
/// round-trip form, so reading them back yields the same `f64` bit for bit.
pub fn write_csv<'a>(
    out: impl Write,
    rows: impl IntoIterator<Item = (&'a UciSession, bool)>,
) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
    header.push(LABEL);
    writer.write_record(&header)?;
    let flag = |b: bool| if b { "TRUE" } else { "FALSE" };
    for (row, label) in rows {
        let mut record: Vec<String> = Column::ALL
            .iter()
            .map(|&c| match (c, c.numeric(row), c.category(row)) {
                (Column::Weekend, _, _) => flag(row.weekend).to_owned(),
                (_, Some(v), _) => v.to_string(),
                (_, None, cat) => cat.map(Cow::into_owned).unwrap_or_default(),
            })
            .collect();
        record.push(flag(label).to_owned());
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

/// Every session among `docs` as a training row labelled "placed an order", with the page-level rates
/// joined from the page items among `docs`, exactly as the serving path joins them: the event-log export.
pub fn labelled_sessions(
    docs: &std::collections::BTreeMap<crate::features::Key, crate::features::Doc>,
) -> Vec<(String, UciSession, bool)> {
    use crate::features::{Doc, Key};
    let page = |path: &str| match docs.get(&Key::page(path)) {
        Some(Doc::Page(p)) => Some(p),
        _ => None,
    };
    docs.values()
        .filter_map(|d| match d {
            Doc::Session(s) => Some((s.session_id.clone(), s.uci(page), s.orders > 0)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Administrative,Administrative_Duration,Informational,Informational_Duration,ProductRelated,ProductRelated_Duration,BounceRates,ExitRates,PageValues,SpecialDay,Month,OperatingSystems,Browser,Region,TrafficType,VisitorType,Weekend,Revenue\r\n\
0,0,0,0,1,0,0.2,0.2,0,0,Feb,1,1,1,1,Returning_Visitor,FALSE,FALSE\r\n\
3,142.5,0,0,48,1052.255952,0.004347826,0.013043478,0,0,June,2,2,3,1,New_Visitor,TRUE,TRUE\r\n\
1,x,0,0,1,0,0,0,0,0,Feb,1,1,1,1,Other,FALSE,FALSE\r\n\
0,0,0,0,1,0,0,0,0,0,Feb,1,1,1,1,Other,FALSE,MAYBE\r\n";

    #[test]
    fn reads_crlf_uci_rows_and_counts_bad_ones() {
        let data = read_csv(SAMPLE.as_bytes()).unwrap();
        assert_eq!(data.rows.len(), 2);
        assert_eq!(data.labels, vec![false, true]);
        assert_eq!(data.rows[1].month, 6);
        assert_eq!(data.rows[1].visitor_type, VisitorType::New);
        assert!(data.rows[1].weekend);
        assert_eq!(data.rows[1].product_related_duration, 1052.255952);
        assert_eq!(data.bad_rows, 2);
        assert_eq!(data.bad_examples[0].line, 4);
        assert!(data.bad_examples[0]
            .reason
            .contains("Administrative_Duration"));
        assert!(data.bad_examples[1].reason.contains("Revenue"));
        assert_eq!(data.sha256.len(), 64);
    }

    #[test]
    fn written_rows_read_back_identically() {
        let data = read_csv(SAMPLE.as_bytes()).unwrap();
        let mut out = Vec::new();
        write_csv(&mut out, data.rows.iter().zip(data.labels.iter().copied())).unwrap();
        let again = read_csv(out.as_slice()).unwrap();
        assert_eq!(again.rows, data.rows);
        assert_eq!(again.labels, data.labels);
        assert_eq!(again.bad_rows, 0);
    }

    #[test]
    fn a_missing_column_is_a_clear_error() {
        let err = read_csv("Administrative,Revenue\n1,TRUE\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("Administrative_Duration"), "{err}");
    }
}
