#ifndef HRTEM_CCURL_SHIM_H
#define HRTEM_CCURL_SHIM_H
#include <curl/curl.h>
// Swift cannot call the variadic curl_easy_setopt / curl_easy_getinfo: typed wrappers go here.
static inline CURLcode hrtem_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
// Write and header callbacks have the libcurl signature (char *, size_t, size_t, void *).
typedef size_t (*hrtem_curl_data_callback)(char *, size_t, size_t, void *);
static inline CURLcode hrtem_curl_setopt_data_callback(CURL *handle, CURLoption option, hrtem_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode hrtem_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode hrtem_curl_getinfo_offset(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode hrtem_curl_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode hrtem_curl_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}
#endif
