"use strict";
// The connect callback's bounce page: post the identity platform's answer again, from this
// origin, so the browser sends the cookie that binds the sign-in to it.
document.getElementById("bounce").submit();
