package main

// The partition tables: gokrazy's hybrid MBR (the FAT partition for the Raspberry Pi's ROM,
// which reads only MBRs, plus a GPT-protective entry) and a GPT with deterministic GUIDs
// derived from the hostname, so that `root=PARTUUID=…/PARTNROFF=1` in cmdline.txt finds
// partition 2 and gokrazy's init finds /perm as partition 4 (research/gokrazy.md §1.2–1.3).

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"unicode/utf16"
)

const (
	typeEFISystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	typeRootAMD64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	typeRootARM64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	gptEntries    = 128
	gptEntrySize  = 128
)

type partition struct {
	number   int
	role     string
	name     string
	typeGUID string
	guid     string
	first    uint64
	last     uint64
}

type layout struct {
	totalSectors uint64
	partuuid     uint32
	diskGUID     string
	parts        []partition
}

// gokrazyGUID is gokrazy's partition GUID scheme: a fixed prefix, the FNV-32a hash of the
// hostname and the partition number (0 for the disk).
func gokrazyGUID(partuuid uint32, n int) string {
	return fmt.Sprintf("60c24cc1-f3f9-427a-8199-%08x00%02x", partuuid, n)
}

func newLayout(totalSectors uint64, partuuid uint32, goarch string) *layout {
	lastUsable := totalSectors - 1 - backupGPTLBAs
	rootType := typeRootARM64
	if goarch == "amd64" {
		rootType = typeRootAMD64
	}
	l := &layout{totalSectors: totalSectors, partuuid: partuuid, diskGUID: gokrazyGUID(partuuid, 0)}
	l.parts = []partition{
		{1, "boot", "Microsoft basic data", typeEFISystem, gokrazyGUID(partuuid, 1), bootStartLBA, rootAStartLBA - 1},
		{2, "root-a", "Linux filesystem", rootType, gokrazyGUID(partuuid, 2), rootAStartLBA, rootBStartLBA - 1},
		{3, "root-b", "Linux filesystem", typeLinuxData, gokrazyGUID(partuuid, 3), rootBStartLBA, permStartLBA - 1},
		{4, "perm", "Linux filesystem", typeLinuxData, gokrazyGUID(partuuid, 4), permStartLBA, lastUsable},
	}
	return l
}

// rootArg is the kernel's root= value: partition 1's GUID, offset by one.
func (l *layout) rootArg() string {
	return fmt.Sprintf("PARTUUID=%s/PARTNROFF=1", gokrazyGUID(l.partuuid, 1))
}

func (l *layout) manifest() []manifestPart {
	var out []manifestPart
	for _, p := range l.parts {
		out = append(out, manifestPart{
			Number:   p.number,
			Name:     p.name,
			Role:     p.role,
			TypeGUID: p.typeGUID,
			GUID:     p.guid,
			FirstLBA: p.first,
			LastLBA:  p.last,
			Offset:   p.first * sectorSize,
			Size:     (p.last - p.first + 1) * sectorSize,
		})
	}
	return out
}

// guidBytes encodes a GUID in the mixed-endian on-disk form.
func guidBytes(guid string) [16]byte {
	var a uint32
	var b, c uint16
	var d [8]byte
	var dHi uint16
	var dLo uint64
	if _, err := fmt.Sscanf(guid, "%08x-%04x-%04x-%04x-%012x", &a, &b, &c, &dHi, &dLo); err != nil {
		panic(fmt.Sprintf("GUID %q: %v", guid, err))
	}
	var out [16]byte
	binary.LittleEndian.PutUint32(out[0:4], a)
	binary.LittleEndian.PutUint16(out[4:6], b)
	binary.LittleEndian.PutUint16(out[6:8], c)
	binary.BigEndian.PutUint16(d[0:2], dHi)
	for i := 0; i < 6; i++ {
		d[2+i] = byte(dLo >> (8 * (5 - i)))
	}
	copy(out[8:], d[:])
	return out
}

func nameBytes(name string) [72]byte {
	var out [72]byte
	for i, u := range utf16.Encode([]rune(name)) {
		if i >= 36 {
			break
		}
		binary.LittleEndian.PutUint16(out[2*i:], u)
	}
	return out
}

func (l *layout) entries() []byte {
	var buf bytes.Buffer
	for _, p := range l.parts {
		tg := guidBytes(p.typeGUID)
		g := guidBytes(p.guid)
		buf.Write(tg[:])
		buf.Write(g[:])
		binary.Write(&buf, binary.LittleEndian, p.first)
		binary.Write(&buf, binary.LittleEndian, p.last)
		binary.Write(&buf, binary.LittleEndian, uint64(0))
		n := nameBytes(p.name)
		buf.Write(n[:])
	}
	buf.Write(make([]byte, (gptEntries-len(l.parts))*gptEntrySize))
	return buf.Bytes()
}

func (l *layout) header(primary bool, entriesCRC uint32) []byte {
	lastLBA := l.totalSectors - 1
	current, backup, entriesStart := uint64(1), lastLBA, uint64(2)
	if !primary {
		current, backup, entriesStart = lastLBA, 1, lastLBA-32
	}
	h := make([]byte, 92)
	copy(h[0:8], "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], current)
	binary.LittleEndian.PutUint64(h[32:], backup)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], lastLBA-backupGPTLBAs)
	dg := guidBytes(l.diskGUID)
	copy(h[56:72], dg[:])
	binary.LittleEndian.PutUint64(h[72:], entriesStart)
	binary.LittleEndian.PutUint32(h[80:], gptEntries)
	binary.LittleEndian.PutUint32(h[84:], gptEntrySize)
	binary.LittleEndian.PutUint32(h[88:], entriesCRC)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h))
	sector := make([]byte, sectorSize)
	copy(sector, h)
	return sector
}

// mbrSector is the boot code followed by gokrazy's hybrid MBR partition table.
func (l *layout) mbrSector(code [446]byte) []byte {
	s := make([]byte, sectorSize)
	copy(s, code[:])
	entry := func(i int, status, typ byte, start, size uint32) {
		e := s[446+16*i : 446+16*(i+1)]
		e[0] = status
		copy(e[1:4], []byte{0xFE, 0xFF, 0xFF}) // CHS unused: LBA values count
		e[4] = typ
		copy(e[5:8], []byte{0xFE, 0xFF, 0xFF})
		binary.LittleEndian.PutUint32(e[8:], start)
		binary.LittleEndian.PutUint32(e[12:], size)
	}
	entry(0, 0x80, 0x0C, bootStartLBA, bootSectors)
	entry(1, 0x00, 0xEE, 1, bootStartLBA-1)
	s[510], s[511] = 0x55, 0xAA
	return s
}

func (l *layout) write(f *os.File, code [446]byte) error {
	entries := l.entries()
	crc := crc32.ChecksumIEEE(entries)
	lastLBA := int64(l.totalSectors - 1)
	writes := []struct {
		lba  int64
		data []byte
	}{
		{0, l.mbrSector(code)},
		{1, l.header(true, crc)},
		{2, entries},
		{lastLBA - 32, entries},
		{lastLBA, l.header(false, crc)},
	}
	for _, w := range writes {
		if _, err := f.WriteAt(w.data, w.lba*sectorSize); err != nil {
			return err
		}
	}
	return nil
}
