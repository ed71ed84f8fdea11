//! The session fold: one session's events → its features and what it contributes to the aggregates.
//!
//! # UCI online-shoppers features, from v1 events
//!
//! | UCI column | derivation here |
//! |---|---|
//! | `Administrative`, `Informational`, `ProductRelated` | page views of that family: `page_viewed` by `page_type`; a `product_viewed` is a product-related page view (producers send `page_viewed` only for other pages) |
//! | `*_Duration` | per page view, `time_on_page_ms` when the producer sent it, else the time to the session's next page view; the last page view counts 0 s, as Google Analytics does. Stored in ms |
//! | `BounceRates`, `ExitRates`, `PageValues` | page-level metrics averaged over the session's page views; they need the page aggregate ([`super::PageFeatures`]) and are joined on read by [`SessionFeatures::uci`] |
//! | `SpecialDay` | closeness of the session's first event to Valentine's Day or (US) Mother's Day: 1.0 six days before, 0.2 less per day either side, 0 outside [−10, −2] days |
//! | `Month`, `Weekend` | from the first event time, in UTC |
//! | `VisitorType` | `session_started.visitor_type`; absent → `Other` |
//! | `TrafficType`, `Region`, `OperatingSystems`, `Browser` | the first event that carries the context field |
//!
//! Pages and durations are computed from the page views sorted by event time, so arrival order never
//! matters.

use super::aggregate::{Cohort, Exposure, IncentiveRef, Money as MoneyMap};
use super::aggregate::{ItemContribution, OrderRef, PageContribution, UserContribution};
use crate::event::{DeviceType, Event, EventBody, PageType, VisitorType};
use crate::ingest::LogEntry;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The session item lists at most this many distinct pages (the first ones viewed), keeping a crawler's
/// session far below DynamoDB's 400 KB item limit. Page contributions are not capped: they are at most one
/// per page view, like the events themselves.
pub const MAX_LISTED_PAGES: usize = 200;

/// Co-occurrence pairs are counted only for sessions with at most this many distinct products
/// (larger ones look like crawlers).
pub const MAX_COOCCURRENCE_ITEMS: usize = 40;

/// Co-viewed pairs are counted only between products viewed near each other: within this many places
/// in the session's order of first views (`None`: every pair of the session, O(n²)). A product viewed
/// in a session contributes at most `2 × window` partners, so a view costs a bounded number of pair
/// writes. Chosen by the cross-sell hit rate on held-out REES46 sessions (docs/features.md,
/// `checkout-ai cross-sell-bench`).
pub const CO_VIEW_WINDOW: Option<usize> = Some(2);

/// A session's pages, in order of first view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageVisit {
    pub path: String,
    pub views: u32,
}

/// The session entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionFeatures {
    pub session_id: String,
    /// The pseudonymous user of the session's earliest event that names one.
    pub user_id: Option<String>,
    /// How many distinct events this fold saw (the watermark).
    pub event_count: u32,
    pub first_event_at: DateTime<Utc>,
    pub last_event_at: DateTime<Utc>,
    pub expires_at: i64,

    // UCI online-shoppers features (see the module docs).
    pub administrative: u32,
    pub administrative_duration_ms: u64,
    pub informational: u32,
    pub informational_duration_ms: u64,
    pub product_related: u32,
    pub product_related_duration_ms: u64,
    /// Every page view, including cart and checkout pages (which UCI does not break out).
    pub page_views: u32,
    /// Distinct pages in order of first view, at most [`MAX_LISTED_PAGES`]: the join keys for the
    /// page-level rates.
    pub pages: Vec<PageVisit>,
    pub special_day: f64,
    pub month: u32,
    pub weekend: bool,
    pub visitor_type: Option<VisitorType>,
    pub traffic_type: Option<u16>,
    pub region: Option<String>,
    pub operating_system: Option<String>,
    pub browser: Option<String>,
    pub device: Option<DeviceType>,
    pub country: Option<String>,

    // Checkout funnel.
    /// Value of the cart after the session's last event, in minor units of `cart_currency`.
    pub cart_value_minor: i64,
    pub cart_currency: Option<String>,
    pub cart_items: u32,
    pub checkout_started: bool,
    /// Highest `step_index` completed (0: none).
    pub checkout_step: u8,
    pub payment_attempts: u32,
    pub payment_declines: u32,
    pub coupon_attempts: u32,
    pub form_errors: u32,
    pub orders: u32,
    /// Order totals by currency, in minor units.
    pub revenue: MoneyMap,
    pub products_viewed: u32,
    pub decisions: u32,
    /// Decisions that served an incentive (free shipping, a discount): the one-offer guardrail's count.
    #[serde(default)]
    pub offers: u32,
}

/// The UCI columns for one session, with the page-level rates joined in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UciSession {
    pub administrative: f64,
    pub administrative_duration: f64,
    pub informational: f64,
    pub informational_duration: f64,
    pub product_related: f64,
    pub product_related_duration: f64,
    pub bounce_rates: f64,
    pub exit_rates: f64,
    /// In major currency units (minor / 100), as the dataset's `PageValues`.
    pub page_values: f64,
    pub special_day: f64,
    pub month: u32,
    pub operating_systems: Option<String>,
    pub browser: Option<String>,
    pub region: Option<String>,
    pub traffic_type: Option<u16>,
    pub visitor_type: VisitorType,
    pub weekend: bool,
}

impl SessionFeatures {
    /// The UCI columns, joining page-level rates from `page` (a page absent from it counts zero).
    pub fn uci<'p>(&self, page: impl Fn(&str) -> Option<&'p super::PageFeatures>) -> UciSession {
        let (mut bounce, mut exit, mut value, mut views) = (0.0, 0.0, 0.0, 0u32);
        for visit in &self.pages {
            views += visit.views;
            if let Some(p) = page(&visit.path) {
                let w = f64::from(visit.views);
                bounce += w * p.bounce_rate();
                exit += w * p.exit_rate();
                value += w * p.page_value_minor(self.cart_currency.as_deref()) / 100.0;
            }
        }
        let per_view = |x: f64| {
            if views == 0 {
                0.0
            } else {
                x / f64::from(views)
            }
        };
        let secs = |ms: u64| ms as f64 / 1000.0;
        UciSession {
            administrative: f64::from(self.administrative),
            administrative_duration: secs(self.administrative_duration_ms),
            informational: f64::from(self.informational),
            informational_duration: secs(self.informational_duration_ms),
            product_related: f64::from(self.product_related),
            product_related_duration: secs(self.product_related_duration_ms),
            bounce_rates: per_view(bounce),
            exit_rates: per_view(exit),
            page_values: per_view(value),
            special_day: self.special_day,
            month: self.month,
            operating_systems: self.operating_system.clone(),
            browser: self.browser.clone(),
            region: self.region.clone(),
            traffic_type: self.traffic_type,
            visitor_type: self.visitor_type.unwrap_or(VisitorType::Other),
            weekend: self.weekend,
        }
    }
}

/// Everything one session's fold produces.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionProjection {
    pub session: SessionFeatures,
    pub users: Vec<UserContribution>,
    pub items: Vec<ItemContribution>,
    pub pages: Vec<PageContribution>,
    /// Payment signals per user, card, IP and device.
    pub risk: Vec<super::risk::RiskContribution>,
    /// The session's manual-review cases by id, as the queue lists them (`None`: not a case yet).
    pub reviews: Vec<(String, Option<super::review::QueueItem>)>,
}

/// A log entry whose body could not be read back (it was validated at ingest, so this means a bug or a
/// tampered item). It is left out of the fold and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub event_id: String,
    pub detail: String,
}

/// Folds one session's log entries (in any order, with duplicates) into its projection. `None` when no
/// entry is readable.
pub fn fold(entries: &[LogEntry]) -> (Option<SessionProjection>, Vec<Unreadable>) {
    fold_with(entries, CO_VIEW_WINDOW)
}

/// [`fold`] with another co-view window (the cross-sell benchmark compares them).
pub fn fold_with(
    entries: &[LogEntry],
    co_view_window: Option<usize>,
) -> (Option<SessionProjection>, Vec<Unreadable>) {
    let mut unreadable = Vec::new();
    let mut events: BTreeMap<(DateTime<Utc>, &str), (Event, i64)> = BTreeMap::new();
    for entry in entries {
        match entry.event() {
            Ok(event) => {
                events.insert(
                    (event.occurred_at, entry.event_id.as_str()),
                    (event, entry.expires_at),
                );
            }
            Err(e) => unreadable.push(Unreadable {
                event_id: entry.event_id.clone(),
                detail: e.to_string(),
            }),
        }
    }
    let sorted: Vec<&(Event, i64)> = events.values().collect();
    (fold_sorted(&sorted, co_view_window), unreadable)
}

#[derive(Default)]
struct Cart {
    /// product → (quantity, unit price minor)
    lines: BTreeMap<String, (u32, i64)>,
    currency: Option<String>,
    /// A `checkout_started` snapshot that stands until the cart changes again.
    snapshot: Option<(i64, u32)>,
}

impl Cart {
    fn totals(&self) -> (i64, u32) {
        self.snapshot.unwrap_or_else(|| {
            self.lines.values().fold((0i64, 0u32), |(v, n), (q, p)| {
                (v.saturating_add(p.saturating_mul(i64::from(*q))), n + q)
            })
        })
    }
}

struct PageView {
    at: DateTime<Utc>,
    /// The view's event's expiry.
    expires_at: i64,
    page_type: PageType,
    path: String,
    time_on_page_ms: Option<u64>,
}

fn fold_sorted(
    events: &[&(Event, i64)],
    co_view_window: Option<usize>,
) -> Option<SessionProjection> {
    let (first, _) = events.first()?;
    let (last, _) = events.last()?;
    let event_count = u32::try_from(events.len()).unwrap_or(u32::MAX);
    let expires_at = events.iter().map(|(_, x)| *x).max().unwrap_or(0);
    let first_at = first.occurred_at;
    let mut s = SessionFeatures {
        session_id: first.session_id.clone(),
        user_id: events.iter().find_map(|(e, _)| e.user_id.clone()),
        event_count,
        first_event_at: first_at,
        last_event_at: last.occurred_at,
        expires_at,
        administrative: 0,
        administrative_duration_ms: 0,
        informational: 0,
        informational_duration_ms: 0,
        product_related: 0,
        product_related_duration_ms: 0,
        page_views: 0,
        pages: Vec::new(),
        special_day: special_day(first_at.date_naive()),
        month: first_at.month(),
        weekend: matches!(first_at.weekday(), Weekday::Sat | Weekday::Sun),
        visitor_type: None,
        traffic_type: events.iter().find_map(|(e, _)| e.context.traffic_type),
        region: events.iter().find_map(|(e, _)| e.context.region.clone()),
        operating_system: events
            .iter()
            .find_map(|(e, _)| e.context.device.as_ref().and_then(|d| d.os.clone())),
        browser: events
            .iter()
            .find_map(|(e, _)| e.context.device.as_ref().and_then(|d| d.browser.clone())),
        device: events
            .iter()
            .find_map(|(e, _)| e.context.device.as_ref().map(|d| d.kind)),
        country: events.iter().find_map(|(e, _)| e.context.country.clone()),
        cart_value_minor: 0,
        cart_currency: None,
        cart_items: 0,
        checkout_started: false,
        checkout_step: 0,
        payment_attempts: 0,
        payment_declines: 0,
        coupon_attempts: 0,
        form_errors: 0,
        orders: 0,
        revenue: MoneyMap::new(),
        products_viewed: 0,
        decisions: 0,
        offers: 0,
    };

    let mut cart = Cart::default();
    let mut views: Vec<PageView> = Vec::new();
    let mut orders: Vec<(&Event, &crate::event::OrderPlaced)> = Vec::new();
    let mut items = ItemTally::default();
    let mut users: BTreeMap<&str, UserContribution> = BTreeMap::new();

    // The session's incentive not yet redeemed by an order (its cost and currency), and the margin ratio
    // of its latest decision cart (margin, value): what an order's economics are read from.
    let mut incentive: Option<(i64, String)> = None;
    let mut margin: Option<(i64, i64)> = None;
    // When that incentive came in a recovery message, its user and reference: a message's incentive is
    // usually redeemed in a later session, so one not redeemed here goes to the user
    // ([`UserContribution::recovery_incentives`]).
    let mut recovery_incentive: Option<(&str, IncentiveRef)> = None;
    for (event, expires) in events.iter().map(|(e, x)| (e, *x)) {
        if let EventBody::DecisionServed(d) = &event.body {
            if let Some(cart) = d.cart.as_ref().filter(|c| c.value_minor > 0) {
                margin = Some((cart.margin_minor, cart.value_minor));
                let cost = d.served_cost_minor();
                if cost > 0 && crate::event::is_incentive_kind(&d.action) {
                    incentive = Some((cost, cart.currency.clone()));
                    recovery_incentive = event
                        .user_id
                        .as_deref()
                        .filter(|_| d.placement == crate::placement::Placement::Recovery.as_str())
                        .map(|user| {
                            (
                                user,
                                IncentiveRef {
                                    at: event.occurred_at,
                                    decision_id: d.decision_id.clone(),
                                    cost_minor: cost,
                                    currency: cart.currency.clone(),
                                },
                            )
                        });
                }
            }
        }
        if let Some(user) = event.user_id.as_deref() {
            let c = users
                .entry(user)
                .or_insert_with(|| UserContribution::start(user, event, event_count, expires));
            c.last_event_at = event.occurred_at;
            c.expires_at = c.expires_at.max(expires);
            match &event.body {
                EventBody::OrderPlaced(o) => {
                    let mut order = OrderRef::new(event, o);
                    if incentive
                        .as_ref()
                        .is_some_and(|(_, currency)| *currency == order.currency)
                    {
                        order.incentive_minor = incentive.take().map_or(0, |(cost, _)| cost);
                        recovery_incentive = None;
                    }
                    order.margin_minor = margin.map(|(m, v)| {
                        (i128::from(order.total_minor) * i128::from(m) / i128::from(v)) as i64
                    });
                    c.orders.push(order);
                }
                EventBody::RecoveryMessageOutcome(o)
                    if o.outcome == crate::event::MessageOutcome::Unsubscribed =>
                {
                    c.last_unsubscribed_at = c.last_unsubscribed_at.max(Some(event.occurred_at));
                }
                EventBody::ConsentChanged(x) if !x.granted => {
                    c.last_unsubscribed_at = c.last_unsubscribed_at.max(Some(event.occurred_at));
                }
                EventBody::DecisionServed(d) => {
                    let cohort = Cohort::of(event, d);
                    let holdout = d.holdout.as_ref().map(|h| (&h.id, &h.variant));
                    for (exp, variant) in d
                        .experiment_id
                        .as_ref()
                        .zip(d.variant.as_ref())
                        .into_iter()
                        .chain(holdout)
                    {
                        Exposure::observe(
                            c.exposures.entry(exp.clone()),
                            variant,
                            event.occurred_at,
                            &d.decision_id,
                            &cohort,
                        );
                    }
                }
                _ => {}
            }
        }
        match &event.body {
            EventBody::SessionStarted(x) => {
                if s.visitor_type.is_none() {
                    s.visitor_type = x.visitor_type;
                }
            }
            EventBody::PageViewed(p) => views.push(PageView {
                at: event.occurred_at,
                expires_at: expires,
                page_type: p.page_type,
                path: page_path(&event.body).unwrap_or_default(),
                time_on_page_ms: p.time_on_page_ms,
            }),
            EventBody::ProductViewed(p) => {
                views.push(PageView {
                    at: event.occurred_at,
                    expires_at: expires,
                    page_type: PageType::ProductRelated,
                    path: page_path(&event.body).unwrap_or_default(),
                    time_on_page_ms: None,
                });
                items.viewed_at(&p.product_id, event, expires);
            }
            EventBody::CartItemAdded(a) => {
                items.touch(&a.product_id, event, expires).cart_adds += 1;
                let currency = cart
                    .currency
                    .get_or_insert_with(|| a.unit_price.currency.clone());
                if *currency == a.unit_price.currency {
                    let line = cart.lines.entry(a.product_id.clone()).or_insert((0, 0));
                    line.0 = line.0.saturating_add(a.quantity);
                    line.1 = a.unit_price.amount_minor;
                    cart.snapshot = None;
                }
            }
            EventBody::CartItemRemoved(r) => {
                if let Some(line) = cart.lines.get_mut(&r.product_id) {
                    line.0 = line.0.saturating_sub(r.quantity);
                    if line.0 == 0 {
                        cart.lines.remove(&r.product_id);
                    }
                }
                cart.snapshot = None;
            }
            EventBody::CheckoutStarted(c) => {
                s.checkout_started = true;
                if cart.currency.is_none() {
                    cart.currency = Some(c.cart_value.currency.clone());
                }
                if cart.currency.as_deref() == Some(c.cart_value.currency.as_str()) {
                    cart.snapshot = Some((c.cart_value.amount_minor, c.item_count));
                }
            }
            EventBody::CheckoutStepCompleted(c) => {
                s.checkout_started = true;
                s.checkout_step = s.checkout_step.max(c.step_index);
            }
            EventBody::FormError(_) => s.form_errors += 1,
            EventBody::CouponApplied(_) => s.coupon_attempts += 1,
            EventBody::PaymentAttempted(_) => s.payment_attempts += 1,
            EventBody::PaymentDeclined(_) => s.payment_declines += 1,
            EventBody::OrderPlaced(o) => {
                s.orders += 1;
                *s.revenue.entry(o.total.currency.clone()).or_default() += o.total.amount_minor;
                orders.push((event, o));
                for line in &o.lines {
                    let t = items.touch(&line.product_id, event, expires);
                    t.purchases += 1;
                    t.units = t.units.saturating_add(line.quantity);
                }
                // The order empties the cart.
                cart.lines.clear();
                cart.snapshot = None;
            }
            EventBody::DecisionServed(d) => {
                s.decisions += 1;
                if crate::event::is_incentive_kind(&d.action) {
                    s.offers += 1;
                }
            }
            EventBody::OfferAccepted(_)
            | EventBody::ConsentChanged(_)
            | EventBody::RecoveryMessageRequested(_)
            | EventBody::RecoveryMessageOutcome(_)
            | EventBody::ChargebackReceived(_)
            | EventBody::FraudConfirmed(_)
            | EventBody::ReviewUpdated(_) => {}
        }
    }
    (s.cart_value_minor, s.cart_items) = cart.totals();
    s.cart_currency = cart.currency;
    s.products_viewed = u32::try_from(items.viewed().count()).unwrap_or(u32::MAX);

    // Page views: counts and durations by family, then per-page stats.
    for (i, v) in views.iter().enumerate() {
        let duration = v.time_on_page_ms.unwrap_or_else(|| {
            views.get(i + 1).map_or(0, |next| {
                u64::try_from((next.at - v.at).num_milliseconds()).unwrap_or(0)
            })
        });
        s.page_views += 1;
        let (count, total) = match v.page_type {
            PageType::Administrative => (&mut s.administrative, &mut s.administrative_duration_ms),
            PageType::Informational => (&mut s.informational, &mut s.informational_duration_ms),
            PageType::ProductRelated => {
                (&mut s.product_related, &mut s.product_related_duration_ms)
            }
            PageType::Cart | PageType::Checkout | PageType::Other => continue,
        };
        *count += 1;
        *total = total.saturating_add(duration);
    }
    // Distinct pages in order of first view, with their view counts.
    let mut first_view: HashMap<&str, usize> = HashMap::new();
    let mut visits: Vec<PageVisit> = Vec::new();
    // Per distinct page: its first and last view, and the latest expiry of its views.
    let mut times: Vec<VisitTimes> = Vec::new();
    for v in &views {
        let slot = *first_view.entry(v.path.as_str()).or_insert_with(|| {
            visits.push(PageVisit {
                path: v.path.clone(),
                views: 0,
            });
            times.push(VisitTimes {
                first_at: v.at,
                last_at: v.at,
                expires_at: v.expires_at,
            });
            visits.len() - 1
        });
        visits[slot].views += 1;
        let t = &mut times[slot];
        t.last_at = t.last_at.max(v.at);
        t.expires_at = t.expires_at.max(v.expires_at);
    }
    let pages = page_contributions(&s, &views, &visits, &times, &orders);
    visits.truncate(MAX_LISTED_PAGES);
    s.pages = visits;
    let items = items.contributions(&s, co_view_window);
    let risk = super::risk::contributions(events, &s.session_id, s.event_count, s.expires_at);
    let reviews = super::review::queue_items(events);
    if let Some((user, i)) = recovery_incentive {
        if let Some(c) = users.get_mut(user) {
            c.recovery_incentives.push(i);
        }
    }
    Some(SessionProjection {
        users: users.into_values().map(UserContribution::by_day).collect(),
        items,
        pages,
        risk,
        reviews,
        session: s,
    })
}

/// When a session viewed one page.
struct VisitTimes {
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    expires_at: i64,
}

fn page_contributions(
    s: &SessionFeatures,
    views: &[PageView],
    visits: &[PageVisit],
    times: &[VisitTimes],
    orders: &[(&Event, &crate::event::OrderPlaced)],
) -> Vec<PageContribution> {
    let entry = views.first().map(|v| v.path.as_str());
    let exit = views.last().map(|v| v.path.as_str());
    visits
        .iter()
        .zip(times)
        .map(|(visit, t)| {
            let mut value = MoneyMap::new();
            for (e, o) in orders {
                if e.occurred_at >= t.first_at {
                    *value.entry(o.total.currency.clone()).or_default() += o.total.amount_minor;
                }
            }
            let is_entry = entry == Some(visit.path.as_str());
            PageContribution {
                path: visit.path.clone(),
                session_id: s.session_id.clone(),
                event_count: s.event_count,
                views: visit.views,
                entrances: u32::from(is_entry),
                bounces: u32::from(is_entry && views.len() == 1),
                exits: u32::from(exit == Some(visit.path.as_str())),
                value,
                last_event_at: t.last_at,
                expires_at: t.expires_at,
            }
        })
        .collect()
}

#[derive(Default)]
struct ItemTouch {
    /// The place of the product's first view among the session's first views.
    first_view: Option<usize>,
    views: u32,
    cart_adds: u32,
    purchases: u32,
    units: u32,
    last_event_at: Option<DateTime<Utc>>,
    /// The latest expiry of the events that touched the product.
    expires_at: i64,
}

/// Per-product tallies for the session.
#[derive(Default)]
struct ItemTally {
    /// Distinct products viewed so far (the next first view's place).
    first_views: usize,
    items: BTreeMap<String, ItemTouch>,
}

impl ItemTally {
    fn touch(&mut self, product_id: &str, event: &Event, expires_at: i64) -> &mut ItemTouch {
        let t = self.items.entry(product_id.to_string()).or_default();
        t.last_event_at = Some(event.occurred_at);
        t.expires_at = t.expires_at.max(expires_at);
        t
    }

    fn viewed(&self) -> impl Iterator<Item = &str> {
        self.items
            .iter()
            .filter(|(_, t)| t.views > 0)
            .map(|(p, _)| p.as_str())
    }

    fn viewed_at(&mut self, product_id: &str, event: &Event, expires_at: i64) {
        let next = self.first_views;
        let t = self.touch(product_id, event, expires_at);
        t.views += 1;
        if t.first_view.is_none() {
            t.first_view = Some(next);
            self.first_views += 1;
        }
    }

    /// Each viewed product's co-viewed partners: every other viewed product, or (with a window) those
    /// within `window` places of it in the order of first views.
    fn co_viewed(&self, window: Option<usize>) -> BTreeMap<&str, BTreeSet<String>> {
        let mut order: Vec<(usize, &str)> = self
            .items
            .iter()
            .filter_map(|(p, t)| t.first_view.map(|i| (i, p.as_str())))
            .collect();
        order.sort_unstable();
        let mut out = BTreeMap::new();
        if order.len() > MAX_COOCCURRENCE_ITEMS {
            return out;
        }
        for (i, (_, p)) in order.iter().enumerate() {
            let (lo, hi) = match window {
                Some(w) => (i.saturating_sub(w), (i + w).min(order.len() - 1)),
                None => (0, order.len() - 1),
            };
            let partners = order[lo..=hi]
                .iter()
                .filter(|(_, q)| q != p)
                .map(|(_, q)| q.to_string())
                .collect();
            out.insert(*p, partners);
        }
        out
    }

    fn contributions(&self, s: &SessionFeatures, window: Option<usize>) -> Vec<ItemContribution> {
        let co_viewed = self.co_viewed(window);
        let purchased: BTreeSet<&str> = self
            .items
            .iter()
            .filter(|(_, t)| t.purchases > 0)
            .map(|(p, _)| p.as_str())
            .collect();
        let partners = |set: &BTreeSet<&str>, me: &str, mine: bool| -> BTreeSet<String> {
            if !mine || set.len() > MAX_COOCCURRENCE_ITEMS {
                return BTreeSet::new();
            }
            set.iter()
                .filter(|p| **p != me)
                .map(|p| p.to_string())
                .collect()
        };
        self.items
            .iter()
            .map(|(p, t)| ItemContribution {
                product_id: p.clone(),
                session_id: s.session_id.clone(),
                event_count: s.event_count,
                views: t.views,
                cart_adds: t.cart_adds,
                purchases: t.purchases,
                units: t.units,
                co_viewed: co_viewed.get(p.as_str()).cloned().unwrap_or_default(),
                co_purchased: partners(&purchased, p, t.purchases > 0),
                last_event_at: t.last_event_at.unwrap_or(s.last_event_at),
                expires_at: t.expires_at,
            })
            .collect()
    }
}

/// The page an event views, as the page features name it: a page view's path (or `(<page type>)`
/// without one), `/product/<id>` for a product view; `None` for other events.
pub fn page_path(body: &EventBody) -> Option<String> {
    match body {
        EventBody::PageViewed(p) => Some(
            p.path
                .clone()
                .unwrap_or_else(|| format!("({})", page_type_name(p.page_type))),
        ),
        EventBody::ProductViewed(p) => Some(format!("/product/{}", p.product_id)),
        _ => None,
    }
}

fn page_type_name(t: PageType) -> &'static str {
    match t {
        PageType::Administrative => "administrative",
        PageType::Informational => "informational",
        PageType::ProductRelated => "product_related",
        PageType::Cart => "cart",
        PageType::Checkout => "checkout",
        PageType::Other => "other",
    }
}

/// UCI `SpecialDay`: how close `day` is to a gifting day, allowing for delivery time. 1.0 six days
/// before the special day, 0.2 less for each day either side, 0 outside that.
pub fn special_day(day: NaiveDate) -> f64 {
    let year = day.year();
    let candidates = [
        NaiveDate::from_ymd_opt(year, 2, 14),
        mothers_day(year),
        NaiveDate::from_ymd_opt(year + 1, 2, 14),
    ];
    let tenths = candidates
        .into_iter()
        .flatten()
        .map(|special| {
            let before = (special - day).num_days();
            10 - 2 * (before - 6).abs()
        })
        .max()
        .unwrap_or(0)
        .max(0);
    tenths as f64 / 10.0
}

/// The second Sunday of May (Mother's Day in the US).
fn mothers_day(year: i32) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(year, 5, 1)?;
    let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
    Some(first + Duration::days(i64::from(to_sunday) + 7))
}

/// The model's input columns by name, as the decision event logs them (`model_input`).
pub fn model_input(row: &UciSession) -> BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(row) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    }
}

/// The model's input columns read back from a decision event's `model_input`.
pub fn logged_model_input(
    logged: &BTreeMap<String, serde_json::Value>,
) -> Result<UciSession, serde_json::Error> {
    serde_json::from_value(serde_json::Value::Object(
        logged.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_day_peaks_six_days_before_and_fades_by_a_fifth_per_day() {
        let d = |m, day| NaiveDate::from_ymd_opt(2019, m, day).expect("date");
        assert_eq!(special_day(d(2, 8)), 1.0);
        assert_eq!(special_day(d(2, 7)), 0.8);
        assert_eq!(special_day(d(2, 12)), 0.2);
        assert_eq!(special_day(d(2, 13)), 0.0);
        assert_eq!(special_day(d(2, 4)), 0.2);
        assert_eq!(special_day(d(2, 3)), 0.0);
        // Mother's Day 2019 was Sunday 12 May.
        assert_eq!(mothers_day(2019), Some(d(5, 12)));
        assert_eq!(special_day(d(5, 6)), 1.0);
        assert_eq!(special_day(d(10, 1)), 0.0);
    }
}
