#ifndef HRTEM_CTIFF_SHIM_H
#define HRTEM_CTIFF_SHIM_H
#include <tiffio.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>

// Swift cannot call the variadic TIFFGetField / TIFFSetField: typed wrappers go here.
static inline int hrtem_tiff_get_uint16(TIFF *tif, uint32_t tag, uint16_t *value) {
    return TIFFGetField(tif, tag, value);
}
static inline int hrtem_tiff_get_uint32(TIFF *tif, uint32_t tag, uint32_t *value) {
    return TIFFGetField(tif, tag, value);
}
static inline int hrtem_tiff_get_float(TIFF *tif, uint32_t tag, float *value) {
    return TIFFGetField(tif, tag, value);
}
static inline int hrtem_tiff_get_string(TIFF *tif, uint32_t tag, const char **value) {
    return TIFFGetField(tif, tag, value);
}
static inline int hrtem_tiff_get_uint16_defaulted(TIFF *tif, uint32_t tag, uint16_t *value) {
    return TIFFGetFieldDefaulted(tif, tag, value);
}
static inline int hrtem_tiff_set_uint16(TIFF *tif, uint32_t tag, uint16_t value) {
    return TIFFSetField(tif, tag, value);
}
static inline int hrtem_tiff_set_uint32(TIFF *tif, uint32_t tag, uint32_t value) {
    return TIFFSetField(tif, tag, value);
}
static inline int hrtem_tiff_set_double(TIFF *tif, uint32_t tag, double value) {
    return TIFFSetField(tif, tag, value);
}
static inline int hrtem_tiff_set_string(TIFF *tif, uint32_t tag, const char *value) {
    return TIFFSetField(tif, tag, value);
}

// Reading a TIFF from bytes already in memory (a memory-mapped file), with errors collected
// per handle instead of printed to stderr: libtiff's default handlers write to stderr and the
// caller could not tell which file and what went wrong.
typedef struct {
    const uint8_t *data;
    uint64_t size;
    uint64_t position;
    char message[512];
    int has_error;
} hrtem_tiff_source;

static tmsize_t hrtem_tiff_source_read(thandle_t handle, void *buffer, tmsize_t count) {
    hrtem_tiff_source *source = (hrtem_tiff_source *)handle;
    if (count <= 0 || source->position >= source->size) return 0;
    uint64_t available = source->size - source->position;
    uint64_t n = (uint64_t)count < available ? (uint64_t)count : available;
    memcpy(buffer, source->data + source->position, (size_t)n);
    source->position += n;
    return (tmsize_t)n;
}
static tmsize_t hrtem_tiff_source_write(thandle_t handle, void *buffer, tmsize_t count) {
    (void)handle; (void)buffer; (void)count;
    return 0;
}
static toff_t hrtem_tiff_source_seek(thandle_t handle, toff_t offset, int whence) {
    hrtem_tiff_source *source = (hrtem_tiff_source *)handle;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? source->position : source->size;
    source->position = base + offset;
    return source->position;
}
static int hrtem_tiff_source_close(thandle_t handle) { (void)handle; return 0; }
static toff_t hrtem_tiff_source_size(thandle_t handle) { return ((hrtem_tiff_source *)handle)->size; }
static int hrtem_tiff_source_map(thandle_t handle, void **base, toff_t *size) {
    hrtem_tiff_source *source = (hrtem_tiff_source *)handle;
    *base = (void *)source->data;
    *size = source->size;
    return 1;
}
static void hrtem_tiff_source_unmap(thandle_t handle, void *base, toff_t size) {
    (void)handle; (void)base; (void)size;
}

// Keeps the first error (the cause); later ones are usually consequences.
static int hrtem_tiff_error_handler(TIFF *tif, void *user_data, const char *module, const char *format, va_list arguments) {
    (void)tif;
    hrtem_tiff_source *source = (hrtem_tiff_source *)user_data;
    if (source && !source->has_error) {
        char text[400];
        vsnprintf(text, sizeof text, format, arguments);
        snprintf(source->message, sizeof source->message, "%s%s%s", module ? module : "", module ? ": " : "", text);
        source->has_error = 1;
    }
    return 1;
}
static int hrtem_tiff_warning_handler(TIFF *tif, void *user_data, const char *module, const char *format, va_list arguments) {
    (void)tif; (void)user_data; (void)module; (void)format; (void)arguments;
    return 1;
}

static inline TIFFOpenOptions *hrtem_tiff_options(hrtem_tiff_source *source, int64_t max_allocation) {
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    TIFFOpenOptionsSetErrorHandlerExtR(options, hrtem_tiff_error_handler, source);
    TIFFOpenOptionsSetWarningHandlerExtR(options, hrtem_tiff_warning_handler, source);
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, max_allocation);
    return options;
}

/// Opens a TIFF held in memory for reading ("rm": memory-mapped access to the caller's bytes).
static inline TIFF *hrtem_tiff_open_memory(hrtem_tiff_source *source, const char *name) {
    TIFFOpenOptions *options = hrtem_tiff_options(source, (int64_t)1 << 31);
    TIFF *tif = TIFFClientOpenExt(name, "rm", (thandle_t)source,
                                  hrtem_tiff_source_read, hrtem_tiff_source_write, hrtem_tiff_source_seek,
                                  hrtem_tiff_source_close, hrtem_tiff_source_size,
                                  hrtem_tiff_source_map, hrtem_tiff_source_unmap, options);
    TIFFOpenOptionsFree(options);
    return tif;
}

/// Opens a path for writing ("w" classic TIFF, "w8" BigTIFF); errors land in `source`.
static inline TIFF *hrtem_tiff_open_path_for_writing(const char *path, const char *mode, hrtem_tiff_source *source) {
    TIFFOpenOptions *options = hrtem_tiff_options(source, (int64_t)1 << 31);
    TIFF *tif = TIFFOpenExt(path, mode, options);
    TIFFOpenOptionsFree(options);
    return tif;
}
#endif
