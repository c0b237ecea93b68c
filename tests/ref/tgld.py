"""The golden-file format shared by the PyTorch references (".tgld", tests/ref/README.md):
"TERNGLD\0", u32 version, u32 record count; per record u32 name length, name, u32 dtype
(0 f32, 1 i32, 2 i8, 3 utf-8 text), u32 ndim, ndim x u64 dims, then the elements."""
import struct

import numpy as np

MAGIC = b"TERNGLD\0"
VERSION = 1
DT_F32, DT_I32, DT_I8, DT_TEXT = 0, 1, 2, 3
NP_OF = {DT_F32: "<f4", DT_I32: "<i4", DT_I8: "i1"}


def write_tgld(path, records):
    """records: list of (name, dtype, payload) with payload a tensor or a str."""
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<II", VERSION, len(records)))
        for name, dt, payload in records:
            nb = name.encode("utf-8")
            f.write(struct.pack("<I", len(nb)) + nb)
            if dt == DT_TEXT:
                data, dims = payload.encode("utf-8"), (len(payload.encode("utf-8")),)
            else:
                arr = np.ascontiguousarray(payload.detach().cpu().numpy(), dtype=NP_OF[dt])
                data, dims = arr.tobytes(), arr.shape
            f.write(struct.pack("<II", dt, len(dims)) + struct.pack(f"<{len(dims)}Q", *dims))
            f.write(data)


def read_tgld(path):
    """Returns an ordered dict name -> str (text) or numpy array; strict about layout."""
    with open(path, "rb") as f:
        buf = f.read()
    assert buf[:8] == MAGIC, f"{path}: bad magic"
    version, count = struct.unpack_from("<II", buf, 8)
    assert version == VERSION, f"{path}: version {version}"
    off, out = 16, {}
    for _ in range(count):
        (n,) = struct.unpack_from("<I", buf, off)
        name = buf[off + 4: off + 4 + n].decode("utf-8")
        off += 4 + n
        dt, ndim = struct.unpack_from("<II", buf, off)
        dims = struct.unpack_from(f"<{ndim}Q", buf, off + 8)
        off += 8 + 8 * ndim
        assert name not in out, f"{path}: duplicate record {name}"
        if dt == DT_TEXT:
            assert ndim == 1
            out[name] = buf[off: off + dims[0]].decode("utf-8")
            off += dims[0]
        else:
            count_el = int(np.prod(dims, dtype=np.int64))
            arr = np.frombuffer(buf, dtype=NP_OF[dt], count=count_el, offset=off)
            out[name] = arr.reshape(dims).copy()
            off += arr.nbytes
    assert off == len(buf), f"{path}: {len(buf) - off} trailing bytes"
    return out
