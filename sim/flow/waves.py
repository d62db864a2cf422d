"""Waveform dumping for cocotb runs: FST (default when asked) or VCD.

Set ``NPUGEN_WAVES=fst`` (or ``vcd``), or pass ``--waves`` to pytest, and every cocotb run
writes ``dump.fst`` (``dump.vcd``) into its build folder, ready for GTKWave or Surfer.

Verilator's FST writer includes ``<lz4.h>`` and links ``-llz4``. Debian ships the library
(``liblz4.so.1``, a dependency of systemd) but not the header without ``liblz4-dev``, so when
the header is missing we give the compiler a declaration-only header for the two functions
the writer calls and link the system library directly.
"""

import ctypes.util
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["WaveError", "wave_build_args", "waves_format"]

_LZ4_DECLARATIONS = """\
/* Declarations of the two liblz4 functions Verilator's FST writer calls (written by npugen;
 * used only when the system has liblz4 but not its development header). */
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
"""


class WaveError(RuntimeError):
    """Waveform dumping was requested but cannot work on this machine."""


def waves_format():
    """Return ``"fst"``, ``"vcd"`` or None from ``NPUGEN_WAVES``."""
    value = os.environ.get("NPUGEN_WAVES", "").strip().lower()
    if value in ("", "0", "no", "off"):
        return None
    if value in ("1", "yes", "on", "fst"):
        return "fst"
    if value == "vcd":
        return "vcd"
    raise WaveError(f"NPUGEN_WAVES must be fst, vcd or empty, not {value!r}")


def _system_lz4_header():
    return any(Path(d, "lz4.h").is_file() for d in ("/usr/include", "/usr/local/include"))


_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
             "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib", "/lib",
             "/usr/local/lib")


def _lz4_library():
    """Path of the system liblz4 shared library, or None."""
    name = ctypes.util.find_library("lz4") or "liblz4.so.1"
    if os.path.isabs(name):
        return Path(name)
    for directory in _LIB_DIRS:
        candidate = Path(directory, name)
        if candidate.is_file():
            return candidate
    # ldconfig lives in /sbin, which a minimal PATH (as in CI) may not include.
    for ldconfig in (shutil.which("ldconfig"), "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if ldconfig and os.path.exists(ldconfig):
            listing = subprocess.run([ldconfig, "-p"], capture_output=True, text=True,
                                     check=False).stdout
            for line in listing.splitlines():
                if line.strip().startswith(name) and "=>" in line:
                    return Path(line.split("=>")[1].strip())
    return None


def wave_build_args(fmt, build_dir):
    """Verilator build arguments for waveform format ``fmt`` (None: no tracing)."""
    if fmt is None:
        return []
    args = ["--trace-structs"]
    if fmt == "vcd":
        return ["--trace", *args]
    args = ["--trace-fst", *args]
    if not _system_lz4_header():
        library = _lz4_library()
        if library is None:
            raise WaveError("FST waveforms need liblz4 (Debian package liblz4-1); "
                            "use NPUGEN_WAVES=vcd instead")
        shim = Path(build_dir, "lz4shim").resolve()
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "lz4.h").write_text(_LZ4_DECLARATIONS)
        link = shim / "liblz4.so"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(library)
        args += ["-CFLAGS", f"-I{shim}", "-LDFLAGS", f"-L{shim}"]
    return args
