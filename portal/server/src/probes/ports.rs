//! TCP reachability of the relay's ports on one address, all at once, each with a timeout.

use std::{net::IpAddr, time::Instant};

use chatmail_shared::probe_report::{AddressProbe, PortProbe};
use tokio::net::TcpStream;

use super::{smtp, ProbeSettings, PORTS};

pub async fn probe_address(address: IpAddr, settings: &ProbeSettings) -> AddressProbe {
    let ports = futures_util::future::join_all(
        PORTS
            .iter()
            .map(|port| probe_port(address, *port, settings)),
    )
    .await;
    let smtp = if ports.iter().any(|p| p.port == 25 && p.open) {
        Some(smtp::probe(settings.target(address, 25), settings.timeout).await)
    } else {
        None
    };
    AddressProbe {
        address: address.to_string(),
        family: if address.is_ipv4() { "IPv4" } else { "IPv6" }.to_string(),
        ports,
        smtp,
    }
}

async fn probe_port(address: IpAddr, port: u16, settings: &ProbeSettings) -> PortProbe {
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        settings.timeout,
        TcpStream::connect(settings.target(address, port)),
    )
    .await;
    let millis = Some(started.elapsed().as_millis() as u64);
    match outcome {
        Ok(Ok(_)) => PortProbe {
            port,
            open: true,
            problem: None,
            millis,
        },
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => PortProbe {
            port,
            open: false,
            problem: Some("the device (or a router in front of it) refused the connection".into()),
            millis,
        },
        Ok(Err(err)) => PortProbe {
            port,
            open: false,
            problem: Some(format!("no connection: {err}")),
            millis,
        },
        Err(_) => PortProbe {
            port,
            open: false,
            problem: Some(format!(
                "no answer within {} seconds (a firewall may drop the connection)",
                settings.timeout.as_secs()
            )),
            millis: None,
        },
    }
}
