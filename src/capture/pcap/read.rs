//! Reading pcap and pcapng files packet by packet, and slicing each packet down to its IP and
//! TCP headers whatever the link layer.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use etherparse::{EtherType, SlicedPacket};
use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};

use super::{ImportReport, PcapError};

/// Reads every packet of a pcap or pcapng file, handing `f` its time (since the Unix epoch), link
/// type and bytes. Counts packets and notes a file cut mid-packet.
pub(super) fn read_packets(
    path: &Path,
    report: &mut ImportReport,
    mut f: impl FnMut(Duration, DataLink, &[u8]),
) -> Result<(), PcapError> {
    let name = path.display().to_string();
    let io_err = |source| PcapError::Io {
        path: name.clone(),
        source,
    };
    let mut input = BufReader::with_capacity(1 << 16, File::open(path).map_err(io_err)?);
    let magic: Vec<u8> = input.fill_buf().map_err(io_err)?.iter().take(4).copied().collect();
    let read_err = |(packet, source): (u64, pcap_file::PcapError)| PcapError::Read {
        path: name.clone(),
        packet,
        source,
    };
    match magic.as_slice() {
        [0x0A, 0x0D, 0x0D, 0x0A] => read_pcapng(input, report, &mut f).map_err(read_err),
        [0xA1, 0xB2, 0xC3, 0xD4] | [0xD4, 0xC3, 0xB2, 0xA1] | [0xA1, 0xB2, 0x3C, 0x4D] | [0x4D, 0x3C, 0xB2, 0xA1] => {
            read_pcap(input, report, &mut f).map_err(read_err)
        }
        other => Err(PcapError::NotPcap {
            path: name.clone(),
            magic: hex::encode(other),
        }),
    }
}

/// A read error with the number of the packet (or pcapng block) it was met at; 0: the file header.
type ReadError = (u64, pcap_file::PcapError);

/// A capture cut mid-packet (tcpdump killed) ends with an unexpected EOF: what came before is kept.
fn is_cut(e: &pcap_file::PcapError) -> bool {
    matches!(e, pcap_file::PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof)
        || matches!(e, pcap_file::PcapError::IncompleteBuffer)
}

/// The packets of a pcapng file: each interface's link type and timestamp resolution apply to
/// its packets, a new section starts a new interface list.
fn read_pcapng(
    input: BufReader<File>,
    report: &mut ImportReport,
    f: &mut impl FnMut(Duration, DataLink, &[u8]),
) -> Result<(), ReadError> {
    let mut reader = PcapNgReader::new(input).map_err(|e| (0, e))?;
    // (link type, if_tsresol) per interface of the current section.
    let mut interfaces: Vec<(DataLink, u8)> = reader
        .interfaces()
        .iter()
        .map(|i| (i.linktype, tsresol(&i.options)))
        .collect();
    let interface = |interfaces: &[(DataLink, u8)], id: u32| {
        interfaces.get(id as usize).copied().unwrap_or((DataLink::ETHERNET, 6))
    };
    let mut block_no = 0u64;
    let mut last_ts = Duration::ZERO;
    while let Some(block) = reader.next_block() {
        block_no += 1;
        let block = match block {
            Ok(b) => b,
            Err(e) if is_cut(&e) => {
                report.truncated = true;
                break;
            }
            Err(e) => return Err((block_no, e)),
        };
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(i) => interfaces.push((i.linktype, tsresol(&i.options))),
            Block::EnhancedPacket(p) => {
                report.packets += 1;
                let (link, res) = interface(&interfaces, p.interface_id);
                // pcap-file stores the raw timestamp count as if it were nanoseconds;
                // the interface's if_tsresol says what the unit really is.
                last_ts = scale_timestamp(p.timestamp.as_nanos(), res);
                f(last_ts, link, &p.data);
            }
            Block::SimplePacket(p) => {
                // No timestamp in a simple packet block: it takes the previous one's.
                report.packets += 1;
                let link = interfaces.first().map(|i| i.0).unwrap_or(DataLink::ETHERNET);
                f(last_ts, link, &p.data);
            }
            Block::Packet(p) => {
                report.packets += 1;
                let (link, res) = interface(&interfaces, u32::from(p.interface_id));
                last_ts = scale_timestamp(p.timestamp as u128, res);
                f(last_ts, link, &p.data);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The packets of a classic pcap file (either byte order, micro- or nanosecond timestamps).
fn read_pcap(
    input: BufReader<File>,
    report: &mut ImportReport,
    f: &mut impl FnMut(Duration, DataLink, &[u8]),
) -> Result<(), ReadError> {
    let mut reader = PcapReader::new(input).map_err(|e| (0, e))?;
    let link = reader.header().datalink;
    while let Some(packet) = reader.next_packet() {
        let packet = match packet {
            Ok(p) => p,
            Err(e) if is_cut(&e) => {
                report.truncated = true;
                break;
            }
            Err(e) => return Err((report.packets + 1, e)),
        };
        report.packets += 1;
        f(packet.timestamp, link, &packet.data);
    }
    Ok(())
}

/// An interface's `if_tsresol` (default 6: microseconds).
fn tsresol(options: &[InterfaceDescriptionOption<'_>]) -> u8 {
    options
        .iter()
        .find_map(|o| match o {
            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        })
        .unwrap_or(6)
}

/// A raw pcapng timestamp count in units of `if_tsresol` (high bit clear: 10^-n s; set: 2^-n s).
fn scale_timestamp(raw: u128, resol: u8) -> Duration {
    let nanos: u128 = if resol & 0x80 != 0 {
        let shift = u32::from(resol & 0x7F);
        if shift >= 128 {
            0
        } else {
            raw.saturating_mul(1_000_000_000) >> shift
        }
    } else if resol <= 9 {
        raw.saturating_mul(10u128.pow(9 - u32::from(resol)))
    } else {
        10u128.checked_pow(u32::from(resol) - 9).map_or(0, |d| raw / d)
    };
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Bytes of a Linux cooked capture v2 header (`tcpdump -i any` on libpcap 1.10 and later):
/// protocol (the EtherType, big-endian), reserved, interface index, ARPHRD type, packet type,
/// address length, 8 address bytes.
const SLL2_HEADER_LEN: usize = 20;

/// Why a packet was not sliced.
pub(super) enum Unsliced {
    /// A link type this import does not read (its name, for the report).
    Link(String),
    /// Cut by the snap length, or malformed.
    Bad,
}

/// Slices a packet of link type `link` down to its IP and transport headers. etherparse reads
/// Ethernet II (with VLAN tags), Linux cooked capture v1 and raw IP; the 20-byte SLL2 header,
/// which etherparse 0.21 does not know, and BSD loopback's 4-byte address family are stepped
/// over here and the rest handed to etherparse by EtherType or as IP.
pub(super) fn slice(link: DataLink, data: &[u8]) -> Result<SlicedPacket<'_>, Unsliced> {
    let sliced = match link {
        DataLink::ETHERNET => SlicedPacket::from_ethernet(data),
        DataLink::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        DataLink::LINUX_SLL2 => {
            let Some(([hi, lo], _)) = data.split_first_chunk::<2>() else {
                return Err(Unsliced::Bad);
            };
            let Some(rest) = data.get(SLL2_HEADER_LEN..) else {
                return Err(Unsliced::Bad);
            };
            SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([*hi, *lo])), rest)
        }
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => SlicedPacket::from_ip(data),
        // BSD loopback: a 4-byte address family in host byte order, then the IP packet.
        DataLink::NULL | DataLink::LOOP => match data.get(4..) {
            Some(ip) => SlicedPacket::from_ip(ip),
            None => return Err(Unsliced::Bad),
        },
        other => return Err(Unsliced::Link(format!("{other:?}"))),
    };
    sliced.map_err(|_| Unsliced::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamps_follow_if_tsresol() {
        assert_eq!(scale_timestamp(1_500_000, 6), Duration::from_millis(1500));
        assert_eq!(scale_timestamp(1_500_000_000, 9), Duration::from_millis(1500));
        assert_eq!(scale_timestamp(3, 0x81), Duration::from_millis(1500));
    }
}
