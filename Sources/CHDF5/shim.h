#ifndef HRTEM_CHDF5_SHIM_H
#define HRTEM_CHDF5_SHIM_H
// libhdf5's type and property-list constants are macros Swift cannot import; these typed
// wrappers expose what the dataset exporter and importer need (3-D float datasets written and
// read slab by slab) and what the EMD reader and writer need (walking groups, describing and
// reading datasets and attributes, writing small fixture files). libhdf5 is not thread-safe:
// Swift callers serialize every call through one lock.
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

/// A new file (truncating an existing one); negative on failure.
static inline hid_t hrtem_h5_create_file(const char *path) {
    return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
}

/// A contiguous little-endian float64 (`float64` != 0) or float32 dataset of shape (n, h, w).
static inline hid_t hrtem_h5_create_dataset_3d(hid_t file, const char *name, int float64,
                                               hsize_t n, hsize_t h, hsize_t w) {
    hsize_t dims[3] = {n, h, w};
    hid_t space = H5Screate_simple(3, dims, NULL);
    if (space < 0) return space;
    hid_t dataset = H5Dcreate2(file, name, float64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE, space,
                               H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    return dataset;
}

/// Writes `count` consecutive (h, w) planes from `data` (native float64 or float32) at plane `index`.
static inline herr_t hrtem_h5_write_planes(hid_t dataset, hsize_t index, hsize_t count, hsize_t h, hsize_t w,
                                           int float64, const void *data) {
    hid_t fileSpace = H5Dget_space(dataset);
    if (fileSpace < 0) return -1;
    hsize_t start[3] = {index, 0, 0};
    hsize_t extent[3] = {count, h, w};
    herr_t status = H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, NULL, extent, NULL);
    hid_t memorySpace = H5Screate_simple(3, extent, NULL);
    if (status >= 0 && memorySpace >= 0) {
        status = H5Dwrite(dataset, float64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, memorySpace, fileSpace,
                          H5P_DEFAULT, data);
    } else {
        status = -1;
    }
    if (memorySpace >= 0) H5Sclose(memorySpace);
    H5Sclose(fileSpace);
    return status;
}

/// Opens an existing file read-only; negative on failure.
static inline hid_t hrtem_h5_open_file_read(const char *path) {
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

/// Opens dataset `name` if the file has a link of that name (no error stack when it does not).
static inline hid_t hrtem_h5_open_dataset(hid_t file, const char *name) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return -1;
    return H5Dopen2(file, name, H5P_DEFAULT);
}

/// The dataset's rank (negative on failure); its first `capacity` extents go to `dims`.
static inline int hrtem_h5_dataset_shape(hid_t dataset, hsize_t *dims, int capacity) {
    hid_t space = H5Dget_space(dataset);
    if (space < 0) return -1;
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank >= 0 && rank <= capacity) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    return rank;
}

/// 1 for a floating-point dataset, 2 for an integer one, 0 for anything else; `size` gets the
/// element's byte count.
static inline int hrtem_h5_dataset_kind(hid_t dataset, size_t *size) {
    hid_t type = H5Dget_type(dataset);
    if (type < 0) return 0;
    H5T_class_t cls = H5Tget_class(type);
    *size = H5Tget_size(type);
    H5Tclose(type);
    return cls == H5T_FLOAT ? 1 : cls == H5T_INTEGER ? 2 : 0;
}

/// Reads `count` consecutive (h, w) planes at plane `index` into `data`, converted by libhdf5 to
/// native float64 (`float64` != 0) or float32.
static inline herr_t hrtem_h5_read_planes(hid_t dataset, hsize_t index, hsize_t count, hsize_t h, hsize_t w,
                                          int float64, void *data) {
    hid_t fileSpace = H5Dget_space(dataset);
    if (fileSpace < 0) return -1;
    hsize_t start[3] = {index, 0, 0};
    hsize_t extent[3] = {count, h, w};
    herr_t status = H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, start, NULL, extent, NULL);
    hid_t memorySpace = H5Screate_simple(3, extent, NULL);
    if (status >= 0 && memorySpace >= 0) {
        status = H5Dread(dataset, float64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT, memorySpace, fileSpace,
                         H5P_DEFAULT, data);
    } else {
        status = -1;
    }
    if (memorySpace >= 0) H5Sclose(memorySpace);
    H5Sclose(fileSpace);
    return status;
}

static inline herr_t hrtem_h5_close_dataset(hid_t dataset) { return H5Dclose(dataset); }
static inline herr_t hrtem_h5_close_file(hid_t file) { return H5Fclose(file); }
/// Silences libhdf5's own error printing (hrtem reports errors itself).
static inline void hrtem_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- Reading (EMD) ---- */

/// Opens an existing file read-only by path; negative on failure.
static inline hid_t hrtem_h5_open_file(const char *path) {
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

/// Opens a file held in memory (`bytes`, `count`), read-only; libhdf5 copies the image.
static inline hid_t hrtem_h5_open_image(const void *bytes, size_t count) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    hid_t file = -1;
    if (H5Pset_fapl_core(fapl, 1 << 16, 0) >= 0 && H5Pset_file_image(fapl, (void *)bytes, count) >= 0) {
        file = H5Fopen("hrtem-in-memory.h5", H5F_ACC_RDONLY, fapl);
    }
    H5Pclose(fapl);
    return file;
}

/// 1 when `path` (absolute, from the root) names a link that exists, checking each component
/// in turn as H5Lexists requires; 0 when not; negative on error.
static inline int hrtem_h5_exists(hid_t file, const char *path) {
    char buffer[1024];
    size_t length = strlen(path);
    if (length == 0 || length >= sizeof buffer) return -1;
    memcpy(buffer, path, length + 1);
    for (size_t i = 1; i <= length; i++) {
        if (buffer[i] == '/' || buffer[i] == 0) {
            char saved = buffer[i];
            buffer[i] = 0;
            htri_t found = H5Lexists(file, buffer, H5P_DEFAULT);
            buffer[i] = saved;
            if (found <= 0) return (int)found;
            if (saved == 0) break;
        }
    }
    return 1;
}

/// What the object at `path` is: 1 group, 2 dataset, 0 something else, negative on error.
static inline int hrtem_h5_kind(hid_t file, const char *path) {
    hid_t object = H5Oopen(file, path, H5P_DEFAULT);
    if (object < 0) return -1;
    H5I_type_t type = H5Iget_type(object);
    H5Oclose(object);
    return type == H5I_GROUP ? 1 : type == H5I_DATASET ? 2 : 0;
}

/// The number of links in the group at `path`; negative on error.
static inline long hrtem_h5_child_count(hid_t file, const char *path) {
    hid_t group = H5Gopen2(file, path, H5P_DEFAULT);
    if (group < 0) return -1;
    H5G_info_t info;
    herr_t status = H5Gget_info(group, &info);
    H5Gclose(group);
    return status < 0 ? -1 : (long)info.nlinks;
}

/// The name of link `index` (in name order) of the group at `path` into `buffer`; returns the
/// name's full length (which may exceed `size`), negative on error.
static inline long hrtem_h5_child_name(hid_t file, const char *path, unsigned long index, char *buffer, size_t size) {
    return (long)H5Lget_name_by_idx(file, path, H5_INDEX_NAME, H5_ITER_INC, (hsize_t)index, buffer, size, H5P_DEFAULT);
}

/// Type classes as hrtem sorts them.
enum { HRTEM_H5_OTHER = 0, HRTEM_H5_INTEGER = 1, HRTEM_H5_FLOAT = 2, HRTEM_H5_STRING = 3, HRTEM_H5_COMPOUND = 4 };

/// A dataset's element type and extent, and where its bytes are when stored in one run.
typedef struct {
    int typeClass;      // HRTEM_H5_*
    int byteCount;      // bytes per element
    int isSigned;       // integers
    int bigEndian;
    int rank;
    unsigned long long dims[8];
    int contiguous;     // 1: one uncompressed run of bytes at `offset`
    unsigned long long offset;
    int variableString;
} hrtem_h5_dataset_info;

static inline int hrtem_h5_type_class(hid_t type) {
    switch (H5Tget_class(type)) {
    case H5T_INTEGER: return HRTEM_H5_INTEGER;
    case H5T_FLOAT: return HRTEM_H5_FLOAT;
    case H5T_STRING: return HRTEM_H5_STRING;
    case H5T_COMPOUND: return HRTEM_H5_COMPOUND;
    default: return HRTEM_H5_OTHER;
    }
}

/// Describes the dataset at `path`; negative on error (rank above 8 included).
static inline herr_t hrtem_h5_describe(hid_t file, const char *path, hrtem_h5_dataset_info *info) {
    memset(info, 0, sizeof *info);
    hid_t dataset = H5Dopen2(file, path, H5P_DEFAULT);
    if (dataset < 0) return -1;
    herr_t status = -1;
    hid_t type = H5Dget_type(dataset);
    hid_t space = H5Dget_space(dataset);
    hid_t plist = H5Dget_create_plist(dataset);
    if (type >= 0 && space >= 0 && plist >= 0) {
        info->typeClass = hrtem_h5_type_class(type);
        info->byteCount = (int)H5Tget_size(type);
        info->isSigned = info->typeClass == HRTEM_H5_INTEGER && H5Tget_sign(type) == H5T_SGN_2;
        info->bigEndian = (info->typeClass == HRTEM_H5_INTEGER || info->typeClass == HRTEM_H5_FLOAT) && H5Tget_order(type) == H5T_ORDER_BE;
        info->variableString = info->typeClass == HRTEM_H5_STRING && H5Tis_variable_str(type) > 0;
        int rank = H5Sget_simple_extent_ndims(space);
        if (rank >= 0 && rank <= 8) {
            hsize_t dims[8];
            H5Sget_simple_extent_dims(space, dims, NULL);
            info->rank = rank;
            for (int i = 0; i < rank; i++) info->dims[i] = dims[i];
            haddr_t offset = H5Dget_offset(dataset);
            info->contiguous = H5Pget_layout(plist) == H5D_CONTIGUOUS && H5Pget_nfilters(plist) == 0 && offset != HADDR_UNDEF;
            info->offset = info->contiguous ? (unsigned long long)offset : 0;
            status = 0;
        }
    }
    if (plist >= 0) H5Pclose(plist);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    H5Dclose(dataset);
    return status;
}

/// The little-endian memory type for hrtem's element codes: 1-4 signed 8/16/32/64-bit,
/// 5-8 unsigned, 9 float32, 10 float64.
static inline hid_t hrtem_h5_le_type(int code) {
    switch (code) {
    case 1: return H5T_STD_I8LE; case 2: return H5T_STD_I16LE; case 3: return H5T_STD_I32LE; case 4: return H5T_STD_I64LE;
    case 5: return H5T_STD_U8LE; case 6: return H5T_STD_U16LE; case 7: return H5T_STD_U32LE; case 8: return H5T_STD_U64LE;
    case 9: return H5T_IEEE_F32LE; case 10: return H5T_IEEE_F64LE;
    default: return -1;
    }
}

/// Reads the hyperslab `start`/`count` (rank entries each) of the dataset at `path` as
/// little-endian elements of `code` into `buffer`, C order; negative on error.
static inline herr_t hrtem_h5_read_slab(hid_t file, const char *path, int code, int rank,
                                        const unsigned long long *start, const unsigned long long *count, void *buffer) {
    hid_t memoryType = hrtem_h5_le_type(code);
    if (memoryType < 0 || rank < 1 || rank > 8) return -1;
    hid_t dataset = H5Dopen2(file, path, H5P_DEFAULT);
    if (dataset < 0) return -1;
    herr_t status = -1;
    hid_t fileSpace = H5Dget_space(dataset);
    hsize_t s[8], c[8];
    for (int i = 0; i < rank; i++) { s[i] = start[i]; c[i] = count[i]; }
    hid_t memorySpace = H5Screate_simple(rank, c, NULL);
    if (fileSpace >= 0 && memorySpace >= 0 && H5Sget_simple_extent_ndims(fileSpace) == rank
        && H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, s, NULL, c, NULL) >= 0) {
        status = H5Dread(dataset, memoryType, memorySpace, fileSpace, H5P_DEFAULT, buffer);
    }
    if (memorySpace >= 0) H5Sclose(memorySpace);
    if (fileSpace >= 0) H5Sclose(fileSpace);
    H5Dclose(dataset);
    return status;
}

/// A C string memory type of `size` bytes (or H5T_VARIABLE) in the character set and padding
/// of the file's string type `type`: reading through a copy of a file type itself would write
/// the file's representation of variable-length data, and HDF5 cannot convert ASCII to UTF-8.
static inline hid_t hrtem_h5_memory_string(hid_t type, size_t size) {
    hid_t memoryType = H5Tcopy(H5T_C_S1);
    H5Tset_size(memoryType, size);
    H5T_cset_t cset = H5Tget_cset(type);
    if (cset == H5T_CSET_ASCII || cset == H5T_CSET_UTF8) H5Tset_cset(memoryType, cset);
    if (size != H5T_VARIABLE) {
        H5T_str_t pad = H5Tget_strpad(type);
        if (pad == H5T_STR_NULLTERM || pad == H5T_STR_NULLPAD || pad == H5T_STR_SPACEPAD) H5Tset_strpad(memoryType, pad);
    }
    return memoryType;
}

/// Reads attribute `name` of the object at `path`: a number into `*number` (returns 1), or a
/// string (fixed or variable length) into `buffer` (returns 2 + its full length); 0 when the
/// attribute is absent or of another kind; negative on error. libhdf5 1.10 decodes
/// variable-length strings unsafely from corrupt files: the Swift side reads those natively.
static inline long hrtem_h5_read_attribute(hid_t file, const char *path, const char *name,
                                           double *number, char *buffer, size_t size) {
    if (H5Aexists_by_name(file, path, name, H5P_DEFAULT) <= 0) return 0;
    hid_t attribute = H5Aopen_by_name(file, path, name, H5P_DEFAULT, H5P_DEFAULT);
    if (attribute < 0) return -1;
    long result = 0;
    hid_t type = H5Aget_type(attribute);
    hid_t space = H5Aget_space(attribute);
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : 0;
    int typeClass = type >= 0 ? hrtem_h5_type_class(type) : HRTEM_H5_OTHER;
    if ((typeClass == HRTEM_H5_INTEGER || typeClass == HRTEM_H5_FLOAT) && points == 1) {
        result = H5Aread(attribute, H5T_NATIVE_DOUBLE, number) >= 0 ? 1 : -1;
    } else if (typeClass == HRTEM_H5_STRING && points == 1 && size > 0) {
        if (H5Tis_variable_str(type) > 0) {
            hid_t memoryType = hrtem_h5_memory_string(type, H5T_VARIABLE);
            char *text = NULL;
            if (H5Aread(attribute, memoryType, &text) >= 0 && text) {
                size_t length = strlen(text);
                size_t n = length < size - 1 ? length : size - 1;
                memcpy(buffer, text, n);
                buffer[n] = 0;
                result = 2 + (long)length;
                H5free_memory(text);
            } else {
                result = -1;
            }
            H5Tclose(memoryType);
        } else {
            size_t fixed = H5Tget_size(type);
            char *text = fixed > 0 && fixed < (1u << 24) ? (char *)calloc(fixed + 1, 1) : NULL;
            hid_t memoryType = hrtem_h5_memory_string(type, fixed);
            if (text && H5Aread(attribute, memoryType, text) >= 0) {
                size_t length = strnlen(text, fixed);
                size_t n = length < size - 1 ? length : size - 1;
                memcpy(buffer, text, n);
                buffer[n] = 0;
                result = 2 + (long)length;
            } else {
                result = -1;
            }
            H5Tclose(memoryType);
            free(text);
        }
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    H5Aclose(attribute);
    return result;
}

/// 1 when attribute `name` of the object at `path` is a variable-length string, else 0.
static inline int hrtem_h5_attribute_is_variable_string(hid_t file, const char *path, const char *name) {
    if (H5Aexists_by_name(file, path, name, H5P_DEFAULT) <= 0) return 0;
    hid_t attribute = H5Aopen_by_name(file, path, name, H5P_DEFAULT, H5P_DEFAULT);
    if (attribute < 0) return 0;
    hid_t type = H5Aget_type(attribute);
    int result = type >= 0 && H5Tget_class(type) == H5T_STRING && H5Tis_variable_str(type) > 0;
    if (type >= 0) H5Tclose(type);
    H5Aclose(attribute);
    return result;
}

/// The file address of the object header at `path` (for reading attribute messages natively).
static inline herr_t hrtem_h5_object_address(hid_t file, const char *path, unsigned long long *address) {
    H5O_info_t info;
    if (H5Oget_info_by_name2(file, path, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
    *address = (unsigned long long)info.addr;
    return 0;
}

/* ---- Writing (EMD fixtures) ---- */

/// A new group at `path` (its parent must exist); negative on failure.
static inline hid_t hrtem_h5_create_group(hid_t file, const char *path) {
    return H5Gcreate2(file, path, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}
static inline herr_t hrtem_h5_close_group(hid_t group) { return H5Gclose(group); }

/// Writes a contiguous dataset of `rank` dims with element `code` (see hrtem_h5_le_type),
/// stored little-endian, from `data` (C order).
static inline herr_t hrtem_h5_write_dataset(hid_t file, const char *path, int code, int rank,
                                            const unsigned long long *dims, const void *data) {
    hid_t type = hrtem_h5_le_type(code);
    if (type < 0 || rank < 1 || rank > 8) return -1;
    hsize_t d[8];
    for (int i = 0; i < rank; i++) d[i] = dims[i];
    hid_t space = H5Screate_simple(rank, d, NULL);
    if (space < 0) return -1;
    hid_t dataset = H5Dcreate2(file, path, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = -1;
    if (dataset >= 0) {
        status = H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
        H5Dclose(dataset);
    }
    H5Sclose(space);
    return status;
}

/// Writes a one-element variable-length string dataset (how Velox stores its JSON records).
static inline herr_t hrtem_h5_write_string_dataset(hid_t file, const char *path, const char *text) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hsize_t one = 1;
    hid_t space = H5Screate_simple(1, &one, NULL);
    hid_t dataset = H5Dcreate2(file, path, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = -1;
    if (dataset >= 0) {
        status = H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, &text);
        H5Dclose(dataset);
    }
    H5Sclose(space);
    H5Tclose(type);
    return status;
}

/// Attaches a scalar attribute: a variable-length string, or an int32 (Berkeley EMD's
/// `emd_group_type`).
static inline herr_t hrtem_h5_write_string_attribute(hid_t file, const char *path, const char *name, const char *text) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, H5T_VARIABLE);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attribute = H5Acreate_by_name(file, path, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = -1;
    if (attribute >= 0) {
        status = H5Awrite(attribute, type, &text);
        H5Aclose(attribute);
    }
    H5Sclose(space);
    H5Tclose(type);
    return status;
}
static inline herr_t hrtem_h5_write_int_attribute(hid_t file, const char *path, const char *name, int value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attribute = H5Acreate_by_name(file, path, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t status = -1;
    if (attribute >= 0) {
        status = H5Awrite(attribute, H5T_NATIVE_INT, &value);
        H5Aclose(attribute);
    }
    H5Sclose(space);
    return status;
}

#endif
