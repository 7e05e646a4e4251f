/* lz4 "legacy" frames, the only lz4 container the kernel's RD_LZ4 initramfs
 * decompressor (lib/decompress_unlz4.c) reads: the le32 magic 0x184C2102,
 * then blocks of [le32 compressed size][raw LZ4 block]. Each block is
 * independent and decompresses to at most 8 MiB; the kernel decodes each
 * into an 8 MiB window and stops when the compressed input is used up
 * exactly, so there is no end marker and nothing may follow the last block
 * (the image must be the whole initrd). We write full 8 MiB blocks and a
 * shorter last one, like `lz4 -l`.
 *
 * Level: KT_LZ4_HC_LEVEL (9). Measured on busybox + scx_selftests (4.35 MB
 * of archive, 2 host cores under load): level 1 -> 2.24 MB in 91 ms, 4 ->
 * 2.17 MB in 126 ms, 9 -> 2.13 MB in 280 ms, 12 (what the kernel's own
 * usr/Makefile uses) -> 2.12 MB in 432 ms; decompression took 1.2 ms at
 * every level. An image is built once per content, but again whenever a
 * scheduler binary changes, so 12's last 0.4 % is not worth 1.5x the time. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <lz4hc.h>

#include "kt_cleanup.h"
#include "kt_image.h"

static void s_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t s_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int kt_lz4_legacy_compress_level(const void *in, size_t len, int level, void **ret_buf,
                                 size_t *ret_len)
{
    _cleanup_free_ void *state = NULL;
    _cleanup_free_ uint8_t *out = NULL;
    const uint8_t *src = in;

    if (!ret_buf || !ret_len || (!in && len) || level < 1 || level > LZ4HC_CLEVEL_MAX)
        return -EINVAL;
    if (len > KT_IMAGE_MAX_BYTES) {
        kt_image_set_error("lz4: input of %zu bytes is over the %u MiB bound", len,
                           KT_IMAGE_MAX_BYTES >> 20);
        return -EFBIG;
    }
    size_t nblocks = (len + KT_LZ4_LEGACY_BLOCK - 1) / KT_LZ4_LEGACY_BLOCK;
    size_t bound = (size_t)LZ4_compressBound(KT_LZ4_LEGACY_BLOCK);
    size_t cap = 4 + nblocks * (4 + bound);

    out = malloc(cap);
    state = malloc((size_t)LZ4_sizeofStateHC());
    if (!out || !state)
        return -ENOMEM;

    s_put_le32(out, KT_LZ4_LEGACY_MAGIC);
    size_t olen = 4;
    for (size_t off = 0; off < len; off += KT_LZ4_LEGACY_BLOCK) {
        size_t blk = len - off < KT_LZ4_LEGACY_BLOCK ? len - off : KT_LZ4_LEGACY_BLOCK;
        int c = LZ4_compress_HC_extStateHC(state, (const char *)src + off, (char *)out + olen + 4,
                                           (int)blk, (int)(cap - olen - 4), level);
        if (c <= 0) {
            kt_image_set_error("lz4: compressing the block at offset %zu failed", off);
            return -EIO;
        }
        s_put_le32(out + olen, (uint32_t)c);
        olen += 4 + (size_t)c;
    }

    /* Shrink to fit; keep the big buffer if realloc cannot. */
    void *fit = realloc(out, olen);
    if (fit)
        out = fit;
    *ret_buf = TAKE_PTR(out);
    *ret_len = olen;
    return 0;
}

int kt_lz4_legacy_compress(const void *in, size_t len, void **ret_buf, size_t *ret_len)
{
    return kt_lz4_legacy_compress_level(in, len, KT_LZ4_HC_LEVEL, ret_buf, ret_len);
}

int kt_lz4_legacy_decompress(const void *in, size_t len, size_t max_out, void **ret_buf,
                             size_t *ret_len)
{
    _cleanup_free_ uint8_t *out = NULL;
    const uint8_t *p = in;
    size_t bound = (size_t)LZ4_compressBound(KT_LZ4_LEGACY_BLOCK);
    size_t olen = 0, cap = 0;

    if (!ret_buf || !ret_len || (!in && len))
        return -EINVAL;
    if (len < 4 || s_get_le32(p) != KT_LZ4_LEGACY_MAGIC) {
        kt_image_set_error("lz4: no legacy magic 0x%08X at offset 0", KT_LZ4_LEGACY_MAGIC);
        return -EBADMSG;
    }
    size_t off = 4;
    while (off < len) {
        if (len - off < 4) {
            kt_image_set_error("lz4: %zu stray bytes at offset %zu", len - off, off);
            return -EBADMSG;
        }
        uint32_t csize = s_get_le32(p + off);
        if (csize == KT_LZ4_LEGACY_MAGIC) {
            /* Concatenated frames: the kernel and lz4(1) skip the magic. */
            off += 4;
            continue;
        }
        if (csize == 0 || csize > bound || csize > len - off - 4) {
            kt_image_set_error("lz4: block at offset %zu has bad size %u (%zu bytes left)", off,
                               csize, len - off - 4);
            return -EBADMSG;
        }
        if (cap - olen < KT_LZ4_LEGACY_BLOCK) {
            size_t ncap = cap ? cap * 2 : KT_LZ4_LEGACY_BLOCK;
            while (ncap - olen < KT_LZ4_LEGACY_BLOCK)
                ncap *= 2;
            uint8_t *nout = realloc(out, ncap);
            if (!nout)
                return -ENOMEM;
            out = nout;
            cap = ncap;
        }
        int d = LZ4_decompress_safe((const char *)p + off + 4, (char *)out + olen, (int)csize,
                                    KT_LZ4_LEGACY_BLOCK);
        if (d < 0) {
            kt_image_set_error("lz4: block at offset %zu is corrupt", off);
            return -EBADMSG;
        }
        if ((size_t)d > max_out - olen) {
            kt_image_set_error("lz4: output passes the %zu byte limit at input offset %zu",
                               max_out, off);
            return -EFBIG;
        }
        olen += (size_t)d;
        off += 4 + csize;
    }
    if (!out) {
        out = malloc(1);
        if (!out)
            return -ENOMEM;
    }
    *ret_buf = TAKE_PTR(out);
    *ret_len = olen;
    return 0;
}
