//! Namecheap's XML API, with the API user, API key, user name and the client IP address
//! that Namecheap has on its allow-list.
//!
//! API facts (research/registrars.md §2.1, §2.2;
//! <https://www.namecheap.com/support/api/intro/> (global parameters, allow-list),
//! <https://www.namecheap.com/support/api/methods/domains-dns/get-hosts/>,
//! <https://www.namecheap.com/support/api/methods/domains-dns/set-hosts/>,
//! <https://www.namecheap.com/support/api/methods/domains/get-list/>):
//!
//! * Every call goes to `…/xml.response` with `ApiUser`, `ApiKey`, `UserName`,
//!   `ClientIp` and `Command`; answers are XML `<ApiResponse Status="OK|ERROR">` with
//!   `<Errors><Error Number="…">…</Error></Errors>`, and HTTP 200 even for errors.
//! * `ClientIp` must be an address on the account's API allow-list (Profile → Tools →
//!   Namecheap API Access → Whitelisted IPs; at most 20, no ranges): the portal's egress
//!   address. Namecheap opens the API only to accounts that meet its conditions (balance,
//!   number of domains or spending).
//! * `namecheap.domains.getList` pages with `Page` and `PageSize` (at most 100) and
//!   reports `<Paging><TotalItems>`.
//! * `namecheap.domains.dns.getHosts` (`SLD`, `TLD`) returns every `<host Name Type
//!   Address MXPref TTL>`, plus the domain's `EmailType`.
//! * **`namecheap.domains.dns.setHosts` replaces ALL host records of the domain** ("All
//!   host records that are not included into the API call will be deleted"). So every
//!   `apply` is a read-modify-write of the full host list: read all hosts, apply the
//!   changes to that list in memory (the same per-record rules as every other provider,
//!   [`crate::record_ops`]), and send the whole list back in one POST (Namecheap
//!   recommends POST beyond 10 hosts). Hosts of types the portal does not write (URL
//!   redirects, ALIAS, NS, …) are sent back exactly as read. Someone editing the same
//!   domain between our read and our write loses their edit; the window is one request.
//! * `setHosts` takes the types A, AAAA, ALIAS, CAA, CNAME, MX, MXE, NS, TXT, URL, URL301
//!   and FRAME: **no SRV**. [`Namecheap::unsupported`] says so for the relay's SRV
//!   records (the portal shows them as "add by hand"), and `apply` refuses SRV before
//!   anything is sent.
//! * MX hosts are only served when `EmailType=MX`, which is sent whenever the list has one.
//! * TTL 60–60 000 s ([`Namecheap::effective_ttl`]). Names are relative (`@` for the
//!   apex); host names in `Address` are written absolute with the trailing dot; TXT
//!   `Address` is the raw text; CAA `Address` is `flags tag "value"`.

use async_trait::async_trait;
use chatmail_shared::{DnsRecord, RecordData};
use zeroize::Zeroizing;

use crate::error::ProviderError;
use crate::http::{
    absolute, host_from_api, http_client, rate_limit_wait, relative, short, status_error,
    transport_error, txt_from_api, Advice,
};
use crate::provider::{validate, Change, DnsProvider};
use crate::record_ops::{self, ApiRecord, Content, Op};
use crate::records::{normalize_name, parse_rdata, ZoneContents};

/// The production API.
pub const BASE_URL: &str = "https://api.namecheap.com/xml.response";
/// The sandbox API (accounts made at sandbox.namecheap.com).
pub const SANDBOX_URL: &str = "https://api.sandbox.namecheap.com/xml.response";

/// Namecheap through its XML API.
pub struct Namecheap {
    base: String,
    api_user: String,
    api_key: Zeroizing<String>,
    username: String,
    client_ip: String,
    client: reqwest::Client,
    advice: Advice,
}

impl std::fmt::Debug for Namecheap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namecheap")
            .field("base", &self.base)
            .field("api_user", &self.api_user)
            .field("api_key", &"<hidden>")
            .field("client_ip", &self.client_ip)
            .finish()
    }
}

/// One host as `getHosts` returns it and `setHosts` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Host {
    name: String,
    rtype: String,
    address: String,
    mx_pref: String,
    ttl: String,
}

/// The hosts of a domain.
#[derive(Debug, Clone, Default)]
struct Hosts {
    hosts: Vec<Host>,
    email_type: Option<String>,
}

impl Namecheap {
    /// A client for the account `username` (`api_user` is normally the same), sending
    /// `client_ip` (the portal's address on Namecheap's allow-list).
    pub fn new(
        api_user: &str,
        api_key: &str,
        username: &str,
        client_ip: &str,
    ) -> Result<Self, ProviderError> {
        let client_ip = client_ip.trim().to_string();
        Ok(Namecheap {
            base: BASE_URL.to_string(),
            api_user: api_user.trim().to_string(),
            api_key: Zeroizing::new(api_key.trim().to_string()),
            username: if username.trim().is_empty() {
                api_user.trim().to_string()
            } else {
                username.trim().to_string()
            },
            advice: advice(&client_ip),
            client_ip,
            client: http_client()?,
        })
    }

    /// The same client talking to `base` (the sandbox, or a test server).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.base = base.to_string();
        self
    }

    /// The TTL Namecheap stores for `ttl`: 60 s to 60 000 s.
    pub fn effective_ttl(ttl: u32) -> u32 {
        ttl.clamp(60, 60_000)
    }

    /// Why Namecheap cannot hold `record`, if it cannot (its API has no SRV).
    pub fn unsupported(record: &DnsRecord) -> Option<String> {
        (record.data.rtype() == "SRV").then(|| {
            "Namecheap's API cannot write service (SRV) records; add this record by hand in \
             Namecheap's Advanced DNS page (it is optional)."
                .to_string()
        })
    }

    async fn call(
        &self,
        command: &str,
        params: &[(String, String)],
        zone: Option<&str>,
        post: bool,
    ) -> Result<roxmltree_doc::Owned, ProviderError> {
        let mut all: Vec<(String, String)> = vec![
            ("ApiUser".into(), self.api_user.clone()),
            ("ApiKey".into(), self.api_key.to_string()),
            ("UserName".into(), self.username.clone()),
            ("ClientIp".into(), self.client_ip.clone()),
            ("Command".into(), command.into()),
        ];
        all.extend(params.iter().cloned());
        let req = if post {
            self.client.post(&self.base).form(&all)
        } else {
            self.client.get(&self.base).query(&all)
        };
        let resp = req.send().await.map_err(transport_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(transport_error)?;
        if !status.is_success() {
            if status.as_u16() == 429 {
                return Err(ProviderError::RateLimited {
                    retry_after: rate_limit_wait(&headers),
                });
            }
            return Err(status_error(
                status,
                &headers,
                &short(&text),
                zone,
                &self.advice,
            ));
        }
        let doc = roxmltree_doc::Owned::parse(text)
            .map_err(|e| ProviderError::Other(format!("unreadable answer from Namecheap: {e}")))?;
        if let Some((number, message)) = doc.error() {
            return Err(self.refusal(&number, &message, zone, &headers));
        }
        Ok(doc)
    }

    fn refusal(
        &self,
        number: &str,
        message: &str,
        zone: Option<&str>,
        headers: &reqwest::header::HeaderMap,
    ) -> ProviderError {
        let m = message.to_ascii_lowercase();
        if m.contains("too many") {
            return ProviderError::RateLimited {
                retry_after: rate_limit_wait(headers),
            };
        }
        if number == "1011150"
            || number == "1017150"
            || m.contains("request ip")
            || m.contains("invalid ip")
            || m.contains("clientip")
        {
            return self.advice.no_permission();
        }
        if number == "1011102"
            || number == "1010102"
            || m.contains("api key")
            || m.contains("api access")
        {
            return self.advice.wrong_key();
        }
        if let Some(zone) = zone {
            if matches!(number, "2019166" | "2016166" | "2030166")
                || m.contains("domain not found")
                || m.contains("not associated")
            {
                return ProviderError::ZoneNotFound {
                    domain: normalize_name(zone),
                };
            }
        }
        ProviderError::Rejected(format!("{message} (Namecheap error {number})"))
    }

    fn split(zone: &str) -> Result<(String, String), ProviderError> {
        let zone = normalize_name(zone);
        match zone.split_once('.') {
            Some((sld, tld)) if !sld.is_empty() && !tld.is_empty() => {
                Ok((sld.to_string(), tld.to_string()))
            }
            _ => Err(ProviderError::ZoneNotFound { domain: zone }),
        }
    }

    async fn hosts(&self, zone: &str) -> Result<Hosts, ProviderError> {
        let (sld, tld) = Self::split(zone)?;
        let doc = self
            .call(
                "namecheap.domains.dns.getHosts",
                &[("SLD".into(), sld), ("TLD".into(), tld)],
                Some(zone),
                false,
            )
            .await?;
        let d = doc.doc();
        let result = d
            .descendants()
            .find(|n| n.has_tag_name("DomainDNSGetHostsResult"));
        if let Some(r) = result {
            if r.attribute("IsUsingOurDNS")
                .is_some_and(|v| v.eq_ignore_ascii_case("false"))
            {
                return Err(ProviderError::ZoneNotFound {
                    domain: normalize_name(zone),
                });
            }
        }
        let hosts = d
            .descendants()
            .filter(|n| n.is_element() && n.tag_name().name().eq_ignore_ascii_case("host"))
            .map(|n| Host {
                name: n.attribute("Name").unwrap_or("@").to_string(),
                rtype: n.attribute("Type").unwrap_or("").to_ascii_uppercase(),
                address: n.attribute("Address").unwrap_or("").to_string(),
                mx_pref: n.attribute("MXPref").unwrap_or("10").to_string(),
                ttl: n.attribute("TTL").unwrap_or("1800").to_string(),
            })
            .collect();
        Ok(Hosts {
            hosts,
            email_type: result.and_then(|r| r.attribute("EmailType").map(str::to_string)),
        })
    }

    fn host_of(zone: &str, name: &str, ttl: u32, value: &RecordData) -> Host {
        let host = |h: &str| format!("{}.", normalize_name(h));
        let rel = relative(name, zone);
        let (address, mx_pref) = match value {
            RecordData::A(a) => (a.to_string(), "10".to_string()),
            RecordData::Aaaa(a) => (a.to_string(), "10".to_string()),
            RecordData::Cname(t) => (host(t), "10".into()),
            RecordData::Mx {
                preference,
                exchange,
            } => (host(exchange), preference.to_string()),
            RecordData::Txt(t) => (t.joined(), "10".into()),
            other => (other.presentation(), "10".into()),
        };
        Host {
            name: if rel.is_empty() { "@".into() } else { rel },
            rtype: value.rtype().to_string(),
            address,
            mx_pref,
            ttl: ttl.to_string(),
        }
    }
}

/// Advice for Namecheap, naming the address that must be on the allow-list.
pub fn advice(client_ip: &str) -> Advice {
    Advice {
        wrong_key: "Namecheap did not accept the API key, or API access is switched off. In \
                    Namecheap, open Profile → Tools → Namecheap API Access, switch API access \
                    on, and copy the API key again (the API user is your Namecheap user name)."
            .into(),
        no_permission: format!(
            "Namecheap refused the request because it came from an address that is not on \
             the API allow-list. In Namecheap, open Profile → Tools → Namecheap API Access → \
             Whitelisted IPs and add {client_ip}."
        ),
    }
}

fn to_api(index: usize, h: &Host, zone: &str) -> ApiRecord {
    let rtype = h.rtype.to_ascii_uppercase();
    let parsed = match rtype.as_str() {
        "A" | "AAAA" | "CAA" => parse_rdata(&rtype, &h.address).ok(),
        "CNAME" => Some(RecordData::Cname(host_from_api(&h.address, zone))),
        "MX" => Some(RecordData::Mx {
            preference: h.mx_pref.parse().unwrap_or(10),
            exchange: host_from_api(&h.address, zone),
        }),
        "TXT" => Some(RecordData::Txt(txt_from_api(&h.address))),
        _ => None,
    };
    ApiRecord {
        id: index.to_string(),
        name: absolute(&h.name, zone),
        rtype,
        ttl: h.ttl.parse().unwrap_or(1800),
        content: match parsed {
            Some(d) => Content::Data(d),
            None => Content::Other(h.address.clone()),
        },
    }
}

#[async_trait]
impl DnsProvider for Namecheap {
    fn name(&self) -> &str {
        "Namecheap"
    }

    fn effective_ttl(&self, ttl: u32) -> u32 {
        Namecheap::effective_ttl(ttl)
    }

    fn unsupported(&self, _zone: &str, record: &DnsRecord) -> Option<String> {
        Namecheap::unsupported(record)
    }

    async fn list_zones(&self) -> Result<Vec<String>, ProviderError> {
        let mut out = Vec::new();
        for page in 1..=1000u32 {
            let doc = self
                .call(
                    "namecheap.domains.getList",
                    &[
                        ("Page".into(), page.to_string()),
                        ("PageSize".into(), "100".into()),
                    ],
                    None,
                    false,
                )
                .await?;
            let d = doc.doc();
            let before = out.len();
            out.extend(
                d.descendants()
                    .filter(|n| n.has_tag_name("Domain"))
                    .filter_map(|n| n.attribute("Name").map(normalize_name)),
            );
            let total = d
                .descendants()
                .find(|n| n.has_tag_name("TotalItems"))
                .and_then(|n| n.text())
                .and_then(|t| t.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= total || out.len() == before {
                break;
            }
        }
        Ok(out)
    }

    async fn read(&self, zone: &str) -> Result<ZoneContents, ProviderError> {
        let hosts = self.hosts(zone).await?;
        let recs: Vec<ApiRecord> = hosts
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| to_api(i, h, zone))
            .collect();
        Ok(record_ops::contents(&recs))
    }

    async fn apply(&self, zone: &str, changes: &[Change]) -> Result<(), ProviderError> {
        validate(zone, changes)?;
        if changes
            .iter()
            .any(|c| c.rtype().eq_ignore_ascii_case("SRV") && !matches!(c, Change::Remove { .. }))
        {
            return Err(ProviderError::Rejected(
                "Namecheap's API cannot write service (SRV) records; add them by hand in \
                 Namecheap's Advanced DNS page."
                    .into(),
            ));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let zone = normalize_name(zone);
        let Hosts {
            mut hosts,
            email_type,
        } = self.hosts(&zone).await?;
        let current: Vec<ApiRecord> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| to_api(i, h, &zone))
            .collect();
        let ops = record_ops::plan_all(changes, &current, &Namecheap::effective_ttl);
        if ops.is_empty() {
            return Ok(());
        }
        // Apply the operations to the full list in memory.
        let mut deleted = vec![false; hosts.len()];
        let mut added = Vec::new();
        for op in ops {
            match op {
                Op::Delete { id } => {
                    if let Ok(i) = id.parse::<usize>() {
                        deleted[i] = true;
                    }
                }
                Op::Update {
                    id,
                    name,
                    ttl,
                    value,
                } => {
                    if let Ok(i) = id.parse::<usize>() {
                        hosts[i] = Self::host_of(&zone, &name, ttl, &value);
                    }
                }
                Op::Create { name, ttl, value } => {
                    added.push(Self::host_of(&zone, &name, ttl, &value))
                }
            }
        }
        let list: Vec<Host> = hosts
            .into_iter()
            .zip(deleted)
            .filter(|(_, d)| !d)
            .map(|(h, _)| h)
            .chain(added)
            .collect();
        let (sld, tld) = Self::split(&zone)?;
        let mut params: Vec<(String, String)> = vec![("SLD".into(), sld), ("TLD".into(), tld)];
        if list.iter().any(|h| h.rtype == "MX") {
            params.push(("EmailType".into(), "MX".into()));
        } else if let Some(e) = email_type.filter(|e| !e.eq_ignore_ascii_case("MX")) {
            params.push(("EmailType".into(), e));
        }
        for (i, h) in list.iter().enumerate() {
            let n = i + 1;
            params.push((format!("HostName{n}"), h.name.clone()));
            params.push((format!("RecordType{n}"), h.rtype.clone()));
            params.push((format!("Address{n}"), h.address.clone()));
            params.push((format!("MXPref{n}"), h.mx_pref.clone()));
            params.push((format!("TTL{n}"), h.ttl.clone()));
        }
        self.call("namecheap.domains.dns.setHosts", &params, Some(&zone), true)
            .await
            .map(|_| ())
    }
}

/// An owned XML document (roxmltree borrows its text).
mod roxmltree_doc {
    /// The text of an answer, parsed on demand.
    pub struct Owned {
        text: String,
    }

    impl Owned {
        /// Checks that `text` is XML.
        pub fn parse(text: String) -> Result<Self, roxmltree::Error> {
            roxmltree::Document::parse(&text)?;
            Ok(Owned { text })
        }

        /// The parsed document.
        pub fn doc(&self) -> roxmltree::Document<'_> {
            roxmltree::Document::parse(&self.text).expect("checked when made")
        }

        /// The first error (number, text) of a `Status="ERROR"` answer.
        pub fn error(&self) -> Option<(String, String)> {
            let d = self.doc();
            let root = d.root_element();
            if !root
                .attribute("Status")
                .is_some_and(|s| s.eq_ignore_ascii_case("ERROR"))
            {
                return None;
            }
            let e = d.descendants().find(|n| n.has_tag_name("Error"));
            Some(match e {
                Some(e) => (
                    e.attribute("Number").unwrap_or("").to_string(),
                    e.text().unwrap_or("").trim().to_string(),
                ),
                None => (String::new(), "unknown error".into()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_errors() {
        let ok = roxmltree_doc::Owned::parse(
            r#"<?xml version="1.0" encoding="utf-8"?>
<ApiResponse Status="OK" xmlns="http://api.namecheap.com/xml.response">
 <Errors />
 <CommandResponse Type="namecheap.domains.dns.getHosts">
  <DomainDNSGetHostsResult Domain="example.org" EmailType="MX" IsUsingOurDNS="true">
   <host HostId="1" Name="@" Type="A" Address="198.51.100.7" MXPref="10" TTL="1800" />
   <host HostId="2" Name="chat" Type="TXT" Address="say &quot;hi&quot;" MXPref="10" TTL="300" />
  </DomainDNSGetHostsResult>
 </CommandResponse>
</ApiResponse>"#
                .to_string(),
        )
        .unwrap();
        assert_eq!(ok.error(), None);
        let d = ok.doc();
        let hosts: Vec<_> = d.descendants().filter(|n| n.has_tag_name("host")).collect();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[1].attribute("Address"), Some("say \"hi\""));
        let err = roxmltree_doc::Owned::parse(
            r#"<ApiResponse Status="ERROR"><Errors><Error Number="1011150">Invalid request IP: 192.0.2.1</Error></Errors></ApiResponse>"#.into(),
        )
        .unwrap();
        assert_eq!(
            err.error(),
            Some(("1011150".into(), "Invalid request IP: 192.0.2.1".into()))
        );
    }
}
