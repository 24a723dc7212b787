#ifndef HRTEM_CPNG_SHIM_H
#define HRTEM_CPNG_SHIM_H
#include <png.h>
#include <setjmp.h>
#include <string.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// libpng reports errors by longjmp from its error callback; Swift cannot call setjmp, so every
// entry point that can fail sets its jump target here, in C, and returns 0 with the message in
// the state struct. Warnings are dropped instead of being printed to stderr.
typedef struct {
    png_structp png;
    png_infop info;
    const uint8_t *data;
    size_t size;
    size_t position;
    char message[512];
    // After hrtem_png_read_begin: the decoded layout (palette expanded to RGB, gray below
    // 8 bits expanded to 8, 16-bit kept; tRNS becomes an alpha channel).
    uint32_t width;
    uint32_t height;
    int bit_depth;        // of the decoded samples: 8 or 16
    int channels;         // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    int color_type;       // as stored in the file
    int file_bit_depth;   // as stored in the file
    int interlaced;
    size_t row_bytes;
} hrtem_png_reader;

static void hrtem_png_error(png_structp png, png_const_charp message) {
    hrtem_png_reader *reader = (hrtem_png_reader *)png_get_error_ptr(png);
    snprintf(reader->message, sizeof reader->message, "%s", message ? message : "libpng error");
    longjmp(png_jmpbuf(png), 1);
}
static void hrtem_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

static void hrtem_png_read_data(png_structp png, png_bytep out, size_t count) {
    hrtem_png_reader *reader = (hrtem_png_reader *)png_get_io_ptr(png);
    if (count > reader->size - reader->position) {
        png_error(png, "unexpected end of file");
    }
    memcpy(out, reader->data + reader->position, count);
    reader->position += count;
}

/// Reads the header and sets the decoding transforms. Returns 1 on success, 0 with `message`.
/// Images wider or taller than `max_side` are refused before anything is allocated.
static inline int hrtem_png_read_begin(hrtem_png_reader *reader, const uint8_t *data, size_t size, uint32_t max_side) {
    reader->data = data; reader->size = size; reader->position = 0; reader->message[0] = 0;
    reader->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, reader, hrtem_png_error, hrtem_png_warning);
    if (!reader->png) { snprintf(reader->message, sizeof reader->message, "out of memory"); return 0; }
    reader->info = png_create_info_struct(reader->png);
    if (!reader->info) { snprintf(reader->message, sizeof reader->message, "out of memory"); return 0; }
    if (setjmp(png_jmpbuf(reader->png))) return 0;
    png_set_read_fn(reader->png, reader, hrtem_png_read_data);
    png_set_user_limits(reader->png, max_side, max_side);
    png_set_chunk_malloc_max(reader->png, 64u << 20);
    png_read_info(reader->png, reader->info);
    reader->width = png_get_image_width(reader->png, reader->info);
    reader->height = png_get_image_height(reader->png, reader->info);
    reader->color_type = png_get_color_type(reader->png, reader->info);
    reader->file_bit_depth = png_get_bit_depth(reader->png, reader->info);
    reader->interlaced = png_get_interlace_type(reader->png, reader->info) != PNG_INTERLACE_NONE;
    png_set_expand(reader->png);
    png_set_packing(reader->png);
    if (reader->file_bit_depth == 16) png_set_swap(reader->png);  // samples in host (little-endian) order
    if (reader->interlaced) png_set_interlace_handling(reader->png);
    png_read_update_info(reader->png, reader->info);
    reader->bit_depth = png_get_bit_depth(reader->png, reader->info);
    reader->channels = png_get_channels(reader->png, reader->info);
    reader->row_bytes = png_get_rowbytes(reader->png, reader->info);
    return 1;
}

/// Decodes the next `count` rows into `rows` (consecutive, `row_bytes` each). For interlaced
/// images call it once with all rows (every pass is combined into them). 1 on success, 0 on error.
static inline int hrtem_png_read_rows(hrtem_png_reader *reader, uint8_t *rows, uint32_t count) {
    if (setjmp(png_jmpbuf(reader->png))) return 0;
    int passes = reader->interlaced ? PNG_INTERLACE_ADAM7_PASSES : 1;
    for (int pass = 0; pass < passes; pass++) {
        for (uint32_t row = 0; row < count; row++) {
            png_read_row(reader->png, rows + (size_t)row * reader->row_bytes, NULL);
        }
    }
    return 1;
}

static inline void hrtem_png_read_end(hrtem_png_reader *reader) {
    if (reader->png) png_destroy_read_struct(&reader->png, reader->info ? &reader->info : NULL, NULL);
    reader->png = NULL; reader->info = NULL;
}

// Writing to memory: libpng's output goes into a growing buffer owned by the writer.
typedef struct {
    uint8_t *bytes;
    size_t count;
    size_t capacity;
    char message[512];
} hrtem_png_writer;

static void hrtem_png_write_data(png_structp png, png_bytep data, size_t count) {
    hrtem_png_writer *writer = (hrtem_png_writer *)png_get_io_ptr(png);
    if (writer->count + count > writer->capacity) {
        size_t capacity = writer->capacity ? writer->capacity : 65536;
        while (capacity < writer->count + count) capacity *= 2;
        uint8_t *grown = (uint8_t *)realloc(writer->bytes, capacity);
        if (!grown) png_error(png, "out of memory");
        writer->bytes = grown; writer->capacity = capacity;
    }
    memcpy(writer->bytes + writer->count, data, count);
    writer->count += count;
}
static void hrtem_png_flush(png_structp png) { (void)png; }
static void hrtem_png_write_error(png_structp png, png_const_charp message) {
    hrtem_png_writer *writer = (hrtem_png_writer *)png_get_error_ptr(png);
    snprintf(writer->message, sizeof writer->message, "%s", message ? message : "libpng error");
    longjmp(png_jmpbuf(png), 1);
}

/// Encodes `height` rows of `width` pixels (8-bit samples, `channels` 1 gray / 3 RGB / 4 RGBA,
/// or 16-bit little-endian samples when bit_depth is 16) into `writer->bytes`. 1 on success.
static inline int hrtem_png_encode(hrtem_png_writer *writer, const uint8_t *pixels, uint32_t width, uint32_t height,
                                   int channels, int bit_depth, int compression_level) {
    writer->bytes = NULL; writer->count = 0; writer->capacity = 0; writer->message[0] = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, writer, hrtem_png_write_error, hrtem_png_warning);
    if (!png) { snprintf(writer->message, sizeof writer->message, "out of memory"); return 0; }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        if (!writer->message[0]) snprintf(writer->message, sizeof writer->message, "out of memory");
        return 0;
    }
    int color_type = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 2 ? PNG_COLOR_TYPE_GRAY_ALPHA
                   : channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_write_fn(png, writer, hrtem_png_write_data, hrtem_png_flush);
    png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, compression_level);
    png_write_info(png, info);
    if (bit_depth == 16) png_set_swap(png);
    size_t row_bytes = (size_t)width * channels * (bit_depth / 8);
    for (uint32_t row = 0; row < height; row++) {
        png_write_row(png, (png_const_bytep)(pixels + (size_t)row * row_bytes));
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 1;
}
static inline void hrtem_png_writer_free(hrtem_png_writer *writer) {
    free(writer->bytes);
    writer->bytes = NULL; writer->count = 0; writer->capacity = 0;
}
#endif
