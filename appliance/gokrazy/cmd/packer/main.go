// Command packer assembles a chatmail relay base image: a gokrazy disk image with our init,
// gokrazy's system services, the appliance launcher, the Rust appliance and Maddy.
//
// It does what `gok overwrite --full` does for one fixed set of programs, with the same
// building blocks (github.com/gokrazy/internal's FAT, squashfs and MBR writers), because
// `gok` itself cannot be fetched here (see go.mod). The layout is gokrazy's
// (research/gokrazy.md §1): a hybrid MBR with gokrazy's BIOS boot loader, a GPT, the boot
// FAT at LBA 8192 (100 MiB), root A (squashfs, 500 MiB), root B (empty, 500 MiB, for
// updates) and partition 4 (/perm) up to the backup GPT. Partition 4 is left zero: the
// portal writes an ext4 file system with the relay's configuration into it per download.
//
// It writes the image and a manifest (JSON) describing it: size, sha256, target,
// partition offsets and the pinned inputs.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gokrazy/internal/fat"
	"github.com/gokrazy/internal/mbr"
	"github.com/gokrazy/internal/squashfs"
)

const (
	mib        = 1024 * 1024
	sectorSize = 512
	// Partition offsets and sizes, as gok lays them out.
	bootStartLBA   = 8192
	bootSectors    = 100 * mib / sectorSize
	rootSectors    = 500 * mib / sectorSize
	rootAStartLBA  = bootStartLBA + bootSectors
	rootBStartLBA  = rootAStartLBA + rootSectors
	permStartLBA   = rootBStartLBA + rootSectors
	backupGPTLBAs  = 33 // 32 sectors of entries + the header
	cmdlinePadding = 64 // room for the update process to add flags in place
)

// instanceConfig is the part of gok's instance config.json this packer reads.
type instanceConfig struct {
	Hostname             string
	Environment          []string
	SerialConsole        string
	KernelPackage        *string
	FirmwarePackage      *string
	EEPROMPackage        *string
	KernelExtraArgs      []string
	BootloaderExtraLines []string
	Update               struct {
		HTTPPort  string
		HTTPSPort string
	}
}

func (c *instanceConfig) goarch() string {
	for _, kv := range c.Environment {
		if v, ok := strings.CutPrefix(kv, "GOARCH="); ok {
			return v
		}
	}
	return "arm64"
}

func (c *instanceConfig) serialConsole() string {
	if c.SerialConsole == "" {
		return "serial0,115200"
	}
	return c.SerialConsole
}

// listFlag collects repeated `-flag dest=source` values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		configPath     = flag.String("config", "", "instance config.json (gok's format; Hostname, Environment GOARCH, SerialConsole, kernel/firmware packages, Update ports are read)")
		target         = flag.String("target", "", "target name written into the manifest (amd64, rpi)")
		bindir         = flag.String("bindir", "", "directory with the Go programs: init, dhcp, ntp, randomd, chatmail")
		kernelDir      = flag.String("kernel_dir", "", "directory of the kernel module (vmlinuz, cmdline.txt, config.txt, lib/modules)")
		firmwareDir    = flag.String("firmware_dir", "", "directory of the firmware module (Raspberry Pi), empty for none")
		efiDir         = flag.String("efi_loader", "", "systemd-boot EFI binary for x86-64 (BOOTX64.EFI); empty for BIOS boot only")
		out            = flag.String("o", "", "output image file")
		manifestPath   = flag.String("manifest", "", "output manifest file (JSON)")
		permMiB        = flag.Int64("perm_mib", 256, "size of partition 4 (/perm) in MiB; the device grows it to the disk at first boot")
		buildTimestamp = flag.String("build_timestamp", time.Now().UTC().Format(time.RFC3339), "timestamp recorded in the image")
		caBundle       = flag.String("ca_bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle for /etc/ssl/ca-bundle.pem")
		localtime      = flag.String("localtime", "/usr/share/zoneinfo/Etc/UTC", "time zone file for /etc/localtime")
		version        = flag.String("version", "", "image version written into the manifest")
		files          listFlag
		inputs         listFlag
	)
	flag.Var(&files, "file", "extra file for the root file system: /dest=/host/path[:mode] (repeatable)")
	flag.Var(&inputs, "input", "name=value recorded in the manifest's inputs (repeatable)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("packer: ")
	if *configPath == "" || *bindir == "" || *kernelDir == "" || *out == "" || *manifestPath == "" || *target == "" {
		flag.Usage()
		os.Exit(2)
	}

	var cfg instanceConfig
	b, err := os.ReadFile(*configPath)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		log.Fatalf("%s: %v", *configPath, err)
	}
	if cfg.Hostname == "" {
		log.Fatalf("%s: Hostname is required", *configPath)
	}
	goarch := cfg.goarch()
	if goarch != "amd64" && goarch != "arm64" {
		log.Fatalf("GOARCH %q: only amd64 and arm64 are supported", goarch)
	}

	root, err := rootTree(&cfg, *bindir, *kernelDir, *caBundle, *localtime, *version, files)
	if err != nil {
		log.Fatal(err)
	}

	totalSectors := uint64(permStartLBA) + uint64(*permMiB)*mib/sectorSize + mib/sectorSize
	partuuid := fnv32a(cfg.Hostname)
	layout := newLayout(totalSectors, partuuid, goarch)

	tmp := *out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Truncate(int64(totalSectors * sectorSize)); err != nil {
		log.Fatal(err)
	}

	// Boot file system (partition 1).
	bootW := &offsetWriter{f: f, base: bootStartLBA * sectorSize, limit: bootSectors * sectorSize}
	if err := writeBoot(bootW, &cfg, *kernelDir, *firmwareDir, *efiDir, layout); err != nil {
		log.Fatalf("boot file system: %v", err)
	}
	log.Printf("boot file system: %d bytes", bootW.max)

	// Root file system A (partition 2).
	rootW := &offsetWriter{f: f, base: rootAStartLBA * sectorSize, limit: rootSectors * sectorSize}
	if err := writeRoot(rootW, root); err != nil {
		log.Fatalf("root file system: %v", err)
	}
	log.Printf("root file system: %d bytes", rootW.max)

	// Boot sector: gokrazy's BIOS loader, told where vmlinuz and cmdline.txt are, plus
	// the hybrid MBR partition table; then both GPTs.
	bootR := io.NewSectionReader(f, bootStartLBA*sectorSize, bootSectors*sectorSize)
	rd, err := fat.NewReader(bootR)
	if err != nil {
		log.Fatalf("reading back the boot file system: %v", err)
	}
	vmlinuzOffset, _, err := rd.Extents("/vmlinuz")
	if err != nil {
		log.Fatalf("vmlinuz in the boot file system: %v", err)
	}
	cmdlineOffset, _, err := rd.Extents("/cmdline.txt")
	if err != nil {
		log.Fatalf("cmdline.txt in the boot file system: %v", err)
	}
	code := mbr.Configure(
		uint32(vmlinuzOffset/sectorSize+bootStartLBA),
		uint32(cmdlineOffset/sectorSize+bootStartLBA),
		partuuid)
	if err := layout.write(f, code); err != nil {
		log.Fatalf("partition tables: %v", err)
	}
	if err := f.Sync(); err != nil {
		log.Fatal(err)
	}

	sum, err := sha256File(f)
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}

	m := manifest{
		Format:         1,
		Target:         *target,
		Arch:           map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch],
		Version:        *version,
		Hostname:       cfg.Hostname,
		BuildTimestamp: *buildTimestamp,
		Image:          filepath.Base(*out),
		Size:           totalSectors * sectorSize,
		SHA256:         sum,
		SectorSize:     sectorSize,
		DiskGUID:       layout.diskGUID,
		Partitions:     layout.manifest(),
		Inputs:         map[string]string{},
	}
	for _, kv := range inputs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			log.Fatalf("-input %q: want name=value", kv)
		}
		m.Inputs[k] = v
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*manifestPath+".tmp", append(mb, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, *out); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(*manifestPath+".tmp", *manifestPath); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s (%d bytes, sha256 %s)", *out, m.Size, sum)
}

// manifest describes one base image for the portal.
type manifest struct {
	Format         int               `json:"format"`
	Target         string            `json:"target"`
	Arch           string            `json:"arch"`
	Version        string            `json:"version"`
	Hostname       string            `json:"hostname"`
	BuildTimestamp string            `json:"build_timestamp"`
	Image          string            `json:"image"`
	Size           uint64            `json:"size"`
	SHA256         string            `json:"sha256"`
	SectorSize     int               `json:"sector_size"`
	DiskGUID       string            `json:"disk_guid"`
	Partitions     []manifestPart    `json:"partitions"`
	Inputs         map[string]string `json:"inputs"`
}

type manifestPart struct {
	Number   int    `json:"number"`
	Name     string `json:"name"`
	Role     string `json:"role"`
	TypeGUID string `json:"type_guid"`
	GUID     string `json:"guid"`
	FirstLBA uint64 `json:"first_lba"`
	LastLBA  uint64 `json:"last_lba"`
	Offset   uint64 `json:"offset"`
	Size     uint64 `json:"size"`
}

func fnv32a(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

func sha256File(f *os.File) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, bufio.NewReaderSize(f, 4*mib), make([]byte, 4*mib)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// offsetWriter writes into a window of the image file; the FAT and squashfs writers see
// offset 0 at the start of their partition.
type offsetWriter struct {
	f     *os.File
	base  int64
	limit int64
	pos   int64
	max   int64
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	if w.pos+int64(len(p)) > w.limit {
		return 0, fmt.Errorf("partition full: writing %d bytes at %d of %d", len(p), w.pos, w.limit)
	}
	n, err := w.f.WriteAt(p, w.base+w.pos)
	w.pos += int64(n)
	if w.pos > w.max {
		w.max = w.pos
	}
	return n, err
}

func (w *offsetWriter) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		w.pos = offset
	case io.SeekCurrent:
		w.pos += offset
	case io.SeekEnd:
		w.pos = w.limit + offset
	}
	if w.pos < 0 || w.pos > w.limit {
		return 0, fmt.Errorf("seek to %d outside the partition", w.pos)
	}
	return w.pos, nil
}

// writeBoot writes the FAT boot file system: kernel, device trees and firmware (Pi),
// cmdline.txt, config.txt, the boot loader spec entry and, for x86-64, systemd-boot.
func writeBoot(w io.Writer, cfg *instanceConfig, kernelDir, firmwareDir, efiLoader string, layout *layout) error {
	bufw := bufio.NewWriter(w)
	fw, err := fat.NewWriter(bufw)
	if err != nil {
		return err
	}
	kernelGlobs := []string{"boot.scr", "vmlinuz", "*.dtb", "overlays/*.dtbo", "overlays/overlay_map.dtb"}
	if err := copyGlobs(fw, kernelDir, kernelGlobs); err != nil {
		return err
	}
	if firmwareDir != "" {
		firmwareGlobs := []string{"*.bin", "*.dat", "*.elf", "*.upd", "*.sig", "overlays/*.dtbo"}
		if err := copyGlobs(fw, firmwareDir, firmwareGlobs); err != nil {
			return err
		}
	}

	kernelCmdline, err := os.ReadFile(filepath.Join(kernelDir, "cmdline.txt"))
	if err != nil {
		return err
	}
	cmdline := "console=tty1 "
	if sc := cfg.serialConsole(); sc != "disabled" && sc != "off" {
		if sc == "UART0" {
			sc = "serial0,115200"
		}
		cmdline += "console=" + sc + " "
	}
	cmdline += strings.TrimSpace(string(kernelCmdline))
	if len(cfg.KernelExtraArgs) > 0 {
		cmdline += " " + strings.Join(cfg.KernelExtraArgs, " ")
	}
	root := "root=" + layout.rootArg()
	if !strings.Contains(cmdline, "root=/dev/mmcblk0p2") && !strings.Contains(cmdline, "root=/dev/sda2") {
		return fmt.Errorf("kernel cmdline.txt names no root=/dev/mmcblk0p2 or root=/dev/sda2 to replace: %q", cmdline)
	}
	cmdline = strings.ReplaceAll(cmdline, "root=/dev/mmcblk0p2", root)
	cmdline = strings.ReplaceAll(cmdline, "root=/dev/sda2", root)
	padded := cmdline + strings.Repeat(" ", cmdlinePadding)
	now := time.Now()
	if err := writeFATFile(fw, "/cmdline.txt", now, []byte(padded)); err != nil {
		return err
	}
	if err := writeFATFile(fw, "/loader/entries/gokrazy.conf", now, []byte("title gokrazy\nlinux /vmlinuz\noptions "+padded)); err != nil {
		return err
	}

	configTxt, err := os.ReadFile(filepath.Join(kernelDir, "config.txt"))
	if err != nil {
		return fmt.Errorf("the kernel package must have a config.txt: %v", err)
	}
	config := string(configTxt)
	if cfg.serialConsole() != "off" {
		config = strings.ReplaceAll(config, "enable_uart=0", "enable_uart=1")
	}
	config += "\n" + strings.Join(cfg.BootloaderExtraLines, "\n")
	if err := writeFATFile(fw, "/config.txt", now, []byte(config)); err != nil {
		return err
	}

	if efiLoader != "" {
		src, err := os.Open(efiLoader)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := fw.File("/EFI/BOOT/BOOTX64.EFI", now)
		if err != nil {
			return err
		}
		if _, err := io.Copy(dst, src); err != nil {
			return err
		}
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	return bufw.Flush()
}

func writeFATFile(fw *fat.Writer, path string, modTime time.Time, contents []byte) error {
	w, err := fw.File(path, modTime)
	if err != nil {
		return err
	}
	_, err = w.Write(contents)
	return err
}

func copyGlobs(fw *fat.Writer, dir string, globs []string) error {
	for _, pattern := range globs {
		matches, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			rel, err := filepath.Rel(dir, m)
			if err != nil {
				return err
			}
			dest := "/" + filepath.ToSlash(rel)
			exists, err := fw.Exists(dest)
			if err != nil {
				return err
			}
			if exists {
				return fmt.Errorf("%s: already in the boot file system", dest)
			}
			src, err := os.Open(m)
			if err != nil {
				return err
			}
			st, err := src.Stat()
			if err != nil {
				src.Close()
				return err
			}
			w, err := fw.File(dest, st.ModTime())
			if err != nil {
				src.Close()
				return err
			}
			_, err = io.Copy(w, src)
			src.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// node is one entry of the root file system tree.
type node struct {
	name     string
	mode     os.FileMode
	fromHost string
	literal  []byte
	isFile   bool
	symlink  string
	children map[string]*node
}

func newDir(name string) *node { return &node{name: name, children: map[string]*node{}} }

// dir returns the directory at path below n, creating it.
func (n *node) dir(path string) *node {
	cur := n
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" {
			continue
		}
		next, ok := cur.children[part]
		if !ok {
			next = newDir(part)
			cur.children[part] = next
		}
		cur = next
	}
	return cur
}

func (n *node) add(path string, child *node) error {
	parent := n.dir(filepath.Dir(path))
	child.name = filepath.Base(path)
	if _, exists := parent.children[child.name]; exists {
		return fmt.Errorf("%s: added twice to the root file system", path)
	}
	parent.children[child.name] = child
	return nil
}

func (n *node) addHostFile(dest, src string, mode os.FileMode) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", src)
	}
	if mode == 0 {
		mode = st.Mode().Perm()
	}
	return n.add(dest, &node{fromHost: src, isFile: true, mode: mode})
}

func (n *node) addLiteral(dest string, contents string, mode os.FileMode) error {
	return n.add(dest, &node{literal: []byte(contents), isFile: true, mode: mode})
}

// rootTree lays out the root file system.
func rootTree(cfg *instanceConfig, bindir, kernelDir, caBundle, localtime, version string, files []string) (*node, error) {
	root := newDir("")
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp", "perm", "lib", "run", "mnt", "usr/local/bin"} {
		root.dir(d)
	}
	if err := root.add("/var", &node{symlink: "/perm/var"}); err != nil {
		return nil, err
	}
	for _, prog := range []string{"init", "dhcp", "ntp", "randomd"} {
		if err := root.addHostFile("/gokrazy/"+prog, filepath.Join(bindir, prog), 0o755); err != nil {
			return nil, err
		}
	}
	if err := root.addHostFile("/user/chatmail", filepath.Join(bindir, "chatmail"), 0o755); err != nil {
		return nil, err
	}

	httpPort := cfg.Update.HTTPPort
	if httpPort == "" {
		httpPort = "80"
	}
	httpsPort := cfg.Update.HTTPSPort
	if httpsPort == "" {
		httpsPort = "443"
	}
	literals := []struct{ path, contents string }{
		{"/etc/hostname", cfg.Hostname},
		{"/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n"},
		// Present but empty: gokrazy then reads the password from /perm/gokr-pw.txt, which
		// the device writes at first boot; until then the update API listens only on its
		// unix socket (gokrazy's authenticated.go). No password is ever shared by images.
		{"/etc/gokr-pw.txt", ""},
		{"/etc/http-port.txt", httpPort},
		{"/etc/https-port.txt", httpsPort},
		// The release this root is: the appliance reports it and the update check compares
		// it, since one appliance binary can ship in several releases.
		{"/etc/chatmail/release", version + "\n"},
	}
	for _, l := range literals {
		if err := root.addLiteral(l.path, l.contents, 0o444); err != nil {
			return nil, err
		}
	}
	// Without this symlink gokrazy would put a tmpfs over /etc (mountCompat).
	if err := root.add("/etc/resolv.conf", &node{symlink: "/tmp/resolv.conf"}); err != nil {
		return nil, err
	}
	if err := root.addHostFile("/etc/ssl/ca-bundle.pem", caBundle, 0o444); err != nil {
		return nil, fmt.Errorf("CA bundle: %v", err)
	}
	if err := root.addHostFile("/etc/localtime", localtime, 0o444); err != nil {
		return nil, fmt.Errorf("time zone: %v", err)
	}

	// Kernel modules.
	modules := filepath.Join(kernelDir, "lib", "modules")
	if _, err := os.Stat(modules); err == nil {
		err := filepath.Walk(modules, func(path string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(kernelDir, path)
			if err != nil {
				return err
			}
			dest := "/" + filepath.ToSlash(rel)
			switch {
			case info.IsDir():
				root.dir(dest)
			case info.Mode()&os.ModeSymlink != 0:
				target, err := os.Readlink(path)
				if err != nil {
					return err
				}
				return root.add(dest, &node{symlink: target})
			case info.Mode().IsRegular():
				return root.addHostFile(dest, path, 0o444)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("kernel modules: %v", err)
		}
	}

	for _, spec := range files {
		dest, src, ok := strings.Cut(spec, "=")
		if !ok || !strings.HasPrefix(dest, "/") {
			return nil, fmt.Errorf("-file %q: want /dest=/host/path[:mode]", spec)
		}
		var mode os.FileMode
		if i := strings.LastIndex(src, ":"); i >= 0 {
			var m uint32
			if _, err := fmt.Sscanf(src[i+1:], "%o", &m); err != nil {
				return nil, fmt.Errorf("-file %q: mode: %v", spec, err)
			}
			mode = os.FileMode(m)
			src = src[:i]
		}
		if strings.HasPrefix(dest, "/perm") {
			return nil, fmt.Errorf("-file %q: /perm is the device's own partition", spec)
		}
		if err := root.addHostFile(dest, src, mode); err != nil {
			return nil, err
		}
	}
	return root, nil
}

func writeRoot(w io.WriteSeeker, root *node) error {
	now := time.Now()
	sw, err := squashfs.NewWriter(w, now)
	if err != nil {
		return err
	}
	if err := writeNode(sw.Root, root, now, true); err != nil {
		return err
	}
	return sw.Flush()
}

func writeNode(dir *squashfs.Directory, n *node, now time.Time, isRoot bool) error {
	switch {
	case n.isFile:
		w, err := dir.File(n.name, now, n.mode)
		if err != nil {
			return err
		}
		if n.fromHost != "" {
			src, err := os.Open(n.fromHost)
			if err != nil {
				return err
			}
			_, err = io.Copy(w, src)
			src.Close()
			if err != nil {
				return err
			}
		} else if _, err := w.Write(n.literal); err != nil {
			return err
		}
		return w.Close()
	case n.symlink != "":
		return dir.Symlink(n.symlink, n.name, now, 0o444)
	}
	d := dir
	if !isRoot {
		d = dir.Directory(n.name, now)
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := writeNode(d, n.children[name], now, false); err != nil {
			return err
		}
	}
	return d.Flush()
}
