/* banned.h: functions that have no safe use in this codebase (after git's
 * banned.h).  Use snprintf, the strbuf helpers or memcpy with a known size.
 */
#ifndef CAPSA_BANNED_H
#define CAPSA_BANNED_H

#define BANNED(func) sorry_##func##_is_banned_in_capsa

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef gets
#define gets(x) BANNED(gets)

#endif
